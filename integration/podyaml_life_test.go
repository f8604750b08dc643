package integration

// Issue 14's pod life, workloads and down, through the CLI binary against
// husk and against containerd 2.4 (the CLI speaks only CRI, so both must
// behave the same).

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/husk-runtime/husk/integration/testenv"
)

// cliRuntime is one runtime the CLI tests run against.
type cliRuntime struct {
	name string
	cli  *endpointCLI
	d    *Daemon // husk's, for assertPodGone; nil for containerd
}

func cliRuntimes(t *testing.T) []cliRuntime {
	d := StartDaemon(t)
	ctrd := StartContainerd(t)
	return []cliRuntime{
		{"husk", &endpointCLI{t: t, endpoint: "unix://" + d.Socket, dir: d.Dir}, d},
		{"containerd", &endpointCLI{t: t, endpoint: ctrd.Endpoint(), dir: ctrd.Dir}, nil},
	}
}

// within binds c to the subtest t, so that its failures are t's.
func (c *endpointCLI) within(t *testing.T) *endpointCLI {
	cc := *c
	cc.t = t
	return &cc
}

// readyOf is the READY column of `husk ps --name ^name$`, or "" while
// the container is not listed.
func readyOf(c *endpointCLI, name string) string {
	out, _, code := c.run("ps", "--name", "^"+name+"$")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 {
		return ""
	}
	cols := splitColumns(lines[1])
	return cols[len(cols)-1]
}

// assertCLIEmpty fails t if husk pod run left a pod or a record.
func assertCLIEmpty(t *testing.T, c *endpointCLI, when string) {
	t.Helper()
	if ls := c.ok("pod", "ls", "-q"); strings.TrimSpace(ls) != "" {
		t.Errorf("pods left %s: %q", when, ls)
	}
	if recs, _ := filepath.Glob(filepath.Join(c.dir, "cli-state", "pods", "*")); len(recs) != 0 {
		t.Errorf("records left %s: %v", when, recs)
	}
}

func waitCLI(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, got := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %q after 30s", what, got)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestPodYAMLProbesAndHooks: startup and readiness probes change what
// husk ps and husk pod ls show, as the test makes the probes pass and
// fail; postStart runs after the start; on Ctrl-C preStop runs to its end
// before the container gets SIGTERM. The container and its hooks write to
// an emptyDir, read on the node once the pod is stopped (--keep leaves it
// until pod rm).
func TestPodYAMLProbesAndHooks(t *testing.T) {
	ref := busyboxRef(t)
	for _, rt := range cliRuntimes(t) {
		t.Run(rt.name, func(t *testing.T) {
			c := rt.cli.within(t)
			file := writeManifest(t, t.TempDir(), "life.yaml", strings.NewReplacer("IMAGE", ref).Replace(`apiVersion: v1
kind: Pod
metadata: {name: lifepod, namespace: husk-test}
spec:
  terminationGracePeriodSeconds: 10
  dnsPolicy: Default
  volumes: [{name: out, emptyDir: {}}]
  containers:
  - name: app
    image: IMAGE
    command: [sh, -c, "trap 'echo term >> /out/order; exit 0' TERM; echo main >> /out/order; sleep 3600 & wait"]
    volumeMounts: [{name: out, mountPath: /out}]
    startupProbe: {exec: {command: [test, -f, /tmp/started]}, periodSeconds: 1, failureThreshold: 600}
    readinessProbe: {exec: {command: [test, -f, /tmp/ready]}, periodSeconds: 1, failureThreshold: 1}
    lifecycle:
      postStart: {exec: {command: [sh, -c, "echo post >> /out/order"]}}
      preStop: {exec: {command: [sh, -c, "echo pre >> /out/order; sleep 2; echo pre-done >> /out/order"]}}
`))
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			run := c.command(ctx, "pod", "run", "--keep", "-f", file)
			var stdout, stderr bytes.Buffer
			run.Stdout, run.Stderr = &stdout, &stderr
			if err := run.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				_ = run.Process.Signal(syscall.SIGINT)
				_ = run.Wait()
				c.run("pod", "rm", "--grace-period", "0", "husk-test/lifepod")
			}()
			want := func(ready, podReady string) {
				t.Helper()
				waitCLI(t, "READY of app, want "+ready, func() (bool, string) { r := readyOf(c, "app"); return r == ready, r })
				ls := c.ok("pod", "ls")
				if cols := splitColumns(strings.Split(strings.TrimSpace(ls), "\n")[1]); len(cols) < 6 || cols[5] != podReady {
					t.Errorf("husk pod ls with app %s: want READY %s:\n%s", ready, podReady, ls)
				}
			}
			want("false", "0/1")
			c.ok("exec", "app", "--", "touch", "/tmp/started")
			want("started", "0/1")
			c.ok("exec", "app", "--", "touch", "/tmp/ready")
			want("true", "1/1")
			c.ok("exec", "app", "--", "rm", "/tmp/ready")
			want("started", "0/1")

			if err := run.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			if err := run.Wait(); err != nil {
				t.Fatalf("pod run after SIGINT: %v\nstderr:\n%s", err, stderr.String())
			}
			for _, w := range []string{"container app of pod husk-test/lifepod started (startup probe succeeded)", "container app of pod husk-test/lifepod is ready",
				"container app of pod husk-test/lifepod is not ready: readiness probe failed 1 times"} {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			orders, _ := filepath.Glob(filepath.Join(c.dir, "cli-state", "pods", "*", "volumes", "out", "order"))
			if len(orders) != 1 {
				t.Fatalf("the kept pod's emptyDir: %v, want one order file", orders)
			}
			b, err := os.ReadFile(orders[0])
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Fields(string(b))
			// main and post race, as under kubelet (the hook runs beside
			// the entrypoint); the stop is ordered.
			if len(lines) != 5 || !slices.Contains(lines[:2], "main") || !slices.Contains(lines[:2], "post") || !slices.Equal(lines[2:], []string{"pre", "pre-done", "term"}) {
				t.Errorf("order of the container and its hooks: %q, want main and post, then pre, pre-done, term", lines)
			}
			c.ok("pod", "rm", "husk-test/lifepod")
			assertCLIEmpty(t, c, "after pod rm")
		})
	}
}

// TestPodYAMLDown: a manifest of a ConfigMap, a Secret, a Pod using both
// and a Deployment of 3 replicas runs detached; the replicas are named as
// the Deployment controller names them; `pod down -f` removes exactly
// those pods (not another pod's), with the Secret's tmpfs and the logs.
func TestPodYAMLDown(t *testing.T) {
	ref := busyboxRef(t)
	for _, rt := range cliRuntimes(t) {
		t.Run(rt.name, func(t *testing.T) {
			c := rt.cli.within(t)
			dir := t.TempDir()
			file := writeManifest(t, dir, "app.yaml", strings.ReplaceAll(`apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: husk-test}
data: {color: blue}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: husk-test}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: single, namespace: husk-test}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: creds, secret: {secretName: creds, defaultMode: 0400}}]
  containers:
  - name: app
    image: IMAGE
    command: [sleep, "3600"]
    env: [{name: COLOR, valueFrom: {configMapKeyRef: {name: settings, key: color}}}]
    volumeMounts: [{name: creds, mountPath: /etc/creds}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: husk-test}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: web, image: IMAGE, command: [sleep, "3600"]}]
`, "IMAGE", ref))
			other := writeManifest(t, dir, "other.yaml", strings.ReplaceAll(`apiVersion: v1
kind: Pod
metadata: {name: other, namespace: husk-test}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: other, image: IMAGE, command: [sleep, "3600"]}]
`, "IMAGE", ref))
			c.ok("pod", "run", "--detach", "-f", other)
			defer c.run("pod", "rm", "--grace-period", "0", "husk-test/other")
			runOut := c.ok("pod", "run", "--detach", "-f", file)
			defer c.run("pod", "down", "--grace-period", "0", "-f", file)

			ls := c.ok("pod", "ls")
			names := regexp.MustCompile(`(?m)\b(web-[a-z0-9]+-[bcdfghjklmnpqrstvwxz2456789]{5})\b`).FindAllString(ls, -1)
			if len(names) != 3 || strings.Count(runOut, "started: ") != 4 {
				t.Fatalf("want 3 replicas web-<hash>-<5>, and 4 pods started:\n%s\n%s", runOut, ls)
			}
			if hash := strings.Split(names[0], "-")[1]; strings.Count(ls, "web-"+hash+"-") != 3 {
				t.Errorf("replicas of different template hashes:\n%s", ls)
			}
			if got := c.ok("exec", "app", "--", "sh", "-c", "echo $COLOR; cat /etc/creds/password"); got != "blue\ns3cret" && got != "blue\ns3cret\n" {
				t.Errorf("ConfigMap env and Secret file: %q", got)
			}
			stateDir := filepath.Join(c.dir, "cli-state")
			if ms := testenv.MountsUnder(stateDir); len(ms) != 1 || !strings.HasSuffix(ms[0], "/volumes/creds") {
				t.Errorf("mounts under the state dir: %v, want the Secret's tmpfs only", ms)
			}
			var ids []string
			for _, n := range append(names, "single") {
				ids = append(ids, strings.TrimSpace(c.ok("pods", "-q", "--name", "^"+n+"$")))
			}

			downOut := c.ok("pod", "down", "-f", file)
			for _, n := range append(names, "single") {
				if !strings.Contains(downOut, "pod husk-test/"+n+" removed") {
					t.Errorf("pod down does not name %s:\n%s", n, downOut)
				}
			}
			if left := strings.Fields(c.ok("pods", "-q")); len(left) != 1 {
				t.Errorf("pods after down: %v, want only the other manifest's", left)
			}
			if ms := testenv.MountsUnder(stateDir); len(ms) != 0 {
				t.Errorf("mounts left under the state dir after down: %v", ms)
			}
			recs, _ := filepath.Glob(filepath.Join(stateDir, "pods", "*"))
			logs, _ := filepath.Glob(filepath.Join(c.dir, "pod-logs", "*"))
			if len(recs) != 1 || len(logs) != 1 || !strings.Contains(logs[0], "_other_") {
				t.Errorf("after down: records %v, logs %v; want the other pod's only", recs, logs)
			}
			if rt.d != nil {
				for _, id := range ids {
					assertPodGone(t, rt.d, id)
				}
			}
			if out, _, code := c.run("pod", "down", "-f", file); code != 0 || out != "" {
				t.Errorf("a second down: exit %d, %q; want nothing to do", code, out)
			}
		})
	}
}

// TestPodYAMLJob: a Job whose pod fails twice and then succeeds, within
// backoffLimit 2, succeeds after the Job controller's back-off (10 s,
// then 20 s), each attempt a new pod; one with backoffLimit 0 fails at
// its first failure and husk pod run exits 1. Nothing is left either way.
func TestPodYAMLJob(t *testing.T) {
	ref := busyboxRef(t)
	for _, rt := range cliRuntimes(t) {
		t.Run(rt.name, func(t *testing.T) {
			t.Parallel() // most of it is back-off
			c := rt.cli.within(t)
			out := t.TempDir()
			job := func(name string, limit int) string {
				return writeManifest(t, t.TempDir(), name+".yaml", strings.NewReplacer("IMAGE", ref, "OUT", out, "NAME", name, "LIMIT", strconv.Itoa(limit)).Replace(`apiVersion: batch/v1
kind: Job
metadata: {name: NAME, namespace: husk-test}
spec:
  backoffLimit: LIMIT
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      volumes: [{name: out, hostPath: {path: OUT, type: Directory}}]
      containers:
      - name: count
        image: IMAGE
        volumeMounts: [{name: out, mountPath: /out}]
        command: [sh, -c, "n=$(cat /out/NAME 2>/dev/null || echo 0); n=$((n+1)); echo $n > /out/NAME; echo attempt $n; [ $n -ge 3 ]"]
`))
			}
			stdout, stderr, code := c.run("pod", "run", "-f", job("counter", 2))
			if code != 0 {
				t.Fatalf("job within its backoffLimit: exit %d\n%s\n%s", code, stdout, stderr)
			}
			pods := regexp.MustCompile(`pod husk-test/(counter-[a-z0-9]{5}) started`).FindAllStringSubmatch(stdout, -1)
			if len(pods) != 3 || pods[0][1] == pods[1][1] || pods[1][1] == pods[2][1] {
				t.Errorf("want 3 pods of the job, each its own name:\n%s", stdout)
			}
			for _, w := range []string{"job counter: a new pod in 10s (1 of 2 failures allowed)", "job counter: a new pod in 20s (2 of 2 failures allowed)",
				"job counter succeeded: 1 of 1 completions, 2 failures"} {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if !strings.Contains(stdout, "attempt 3") {
				t.Errorf("the third pod's log not streamed:\n%s", stdout)
			}

			stdout, stderr, code = c.run("pod", "run", "-f", job("strict", 0))
			if code != 1 || !strings.Contains(stderr, "job strict failed: backoffLimit reached (1 failures, limit 0)") || strings.Count(stdout, "started") != 1 {
				t.Errorf("job past its backoffLimit: exit %d, want 1, one pod and the reason\n%s\n%s", code, stdout, stderr)
			}
			assertCLIEmpty(t, c, "after the jobs")
		})
	}
}

// TestPodYAMLEndings: termination messages (the file, and the log's tail
// with FallbackToLogsOnError) in what husk pod run reports; a subPathExpr
// from the downward API; activeDeadlineSeconds stopping a pod that would
// run for an hour, which then fails with DeadlineExceeded.
func TestPodYAMLEndings(t *testing.T) {
	ref := busyboxRef(t)
	for _, rt := range cliRuntimes(t) {
		t.Run(rt.name, func(t *testing.T) {
			c := rt.cli.within(t)
			out := t.TempDir()
			file := writeManifest(t, t.TempDir(), "end.yaml", strings.NewReplacer("IMAGE", ref, "OUT", out).Replace(`apiVersion: v1
kind: Pod
metadata: {name: endpod, namespace: husk-test}
spec:
  restartPolicy: Never
  activeDeadlineSeconds: 4
  terminationGracePeriodSeconds: 1
  volumes: [{name: out, hostPath: {path: OUT, type: Directory}}]
  containers:
  - name: writer
    image: IMAGE
    command: [sh, -c, "echo disk full > /dev/termination-log; exit 3"]
  - name: fallback
    image: IMAGE
    terminationMessagePath: /tmp/why
    terminationMessagePolicy: FallbackToLogsOnError
    command: [sh, -c, "echo first; echo last words; exit 4"]
  - name: sleeper
    image: IMAGE
    env: [{name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
    volumeMounts: [{name: out, mountPath: /out, subPathExpr: "$(POD)/logs"}]
    command: [sh, -c, "echo here > /out/mark; exec sleep 3600"]
`))
			began := time.Now()
			stdout, stderr, code := c.run("pod", "run", "-f", file)
			took := time.Since(began)
			if code != 1 {
				t.Fatalf("pod run: exit %d, want 1 (DeadlineExceeded)\n%s\n%s", code, stdout, stderr)
			}
			for _, w := range []string{
				"container writer of pod husk-test/endpod exited with code 3 (Error): disk full",
				"container fallback of pod husk-test/endpod exited with code 4 (Error): first\nlast words",
				"pod husk-test/endpod was active longer than its activeDeadlineSeconds (4s): DeadlineExceeded",
				"pod husk-test/endpod failed: DeadlineExceeded",
			} {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if took > time.Minute {
				t.Errorf("the run took %s: the deadline of 4s did not end it", took)
			}
			if b, err := os.ReadFile(filepath.Join(out, "endpod", "logs", "mark")); err != nil || string(b) != "here\n" {
				t.Errorf("subPathExpr $(POD)/logs: %q, %v", b, err)
			}
			assertCLIEmpty(t, c, "after the run")
		})
	}
}
