package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// huskCLI runs the husk CLI against one isolated daemon, with the pod
// commands' own state and log dirs inside the daemon's temp dir.
type huskCLI struct {
	t        *testing.T
	d        *Daemon
	stateDir string
	logRoot  string
}

func newHuskCLI(t *testing.T, d *Daemon) *huskCLI {
	return &huskCLI{t: t, d: d, stateDir: filepath.Join(d.Dir, "cli-state"), logRoot: filepath.Join(d.Dir, "pod-logs")}
}

func (h *huskCLI) command(ctx context.Context, args ...string) *exec.Cmd {
	full := []string{"--endpoint", "unix://" + h.d.Socket}
	switch {
	case len(args) > 0 && args[0] == "pod":
		full = append(full, "pod", "--state-dir", h.stateDir, "--pod-log-root", h.logRoot)
		args = args[1:]
	case len(args) > 0 && args[0] == "ps":
		full = append(full, "ps", "--state-dir", h.stateDir)
		args = args[1:]
	}
	return exec.CommandContext(ctx, filepath.Join(binDir(h.t), "husk"), append(full, args...)...)
}

// run runs the CLI to its end and returns its stdout, stderr and exit code.
func (h *huskCLI) run(stdin string, args ...string) (string, string, int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := h.command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		h.t.Fatalf("husk %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// ok runs the CLI and fails the test unless it exits 0.
func (h *huskCLI) ok(args ...string) string {
	h.t.Helper()
	out, errOut, code := h.run("", args...)
	if code != 0 {
		h.t.Fatalf("husk %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func writeManifest(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// cgroupFile reads a control file of a cgroup v1 controller.
func cgroupFile(t *testing.T, controller, cgroup, file string) string {
	t.Helper()
	for _, root := range []string{"/sys/fs/cgroup/" + controller, "/sys/fs/cgroup/cpu,cpuacct"} {
		if b, err := os.ReadFile(filepath.Join(root, cgroup, file)); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	t.Fatalf("no %s in the %s cgroup %s", file, controller, cgroup)
	return ""
}

const podYAML = `apiVersion: v1
kind: Pod
metadata:
  name: yamlpod
  namespace: husk-test
  labels: {app: yamlpod}
spec:
  terminationGracePeriodSeconds: 2
  volumes:
  - name: shared
    emptyDir: {}
  initContainers:
  - name: init
    image: IMAGE
    command: [sh, -c, "sleep 1; echo init-ran; echo done > /shared/init-done"]
    volumeMounts: [{name: shared, mountPath: /shared}]
  containers:
  - name: server
    image: IMAGE
    command: [sh, -c]
    args: ['cat /shared/init-done > /shared/server-saw-init; echo "$GREETING" > /shared/index.html; exec httpd -f -p $(PORT) -h /shared']
    env:
    - {name: PORT, value: "8080"}
    - {name: GREETING, value: "hello-from-$(PORT)-$(LATER)"}
    - {name: LATER, value: x}
    ports: [{containerPort: 8080, hostPort: HOSTPORT}]
    resources:
      requests: {cpu: 250m, memory: 32Mi}
      limits: {cpu: 500m, memory: 64Mi}
    volumeMounts: [{name: shared, mountPath: /shared}]
  - name: client
    image: IMAGE
    command: [sh, -c, "cat /shared/init-done > /shared/client-saw-init; echo client-file > /shared/from-client; for i in $(seq 1 100); do wget -q -O - http://127.0.0.1:8080/ && break; sleep 0.1; done; echo client-done; exec sleep 3600"]
    volumeMounts: [{name: shared, mountPath: /shared}]
`

// TestPodYAML runs a Pod manifest with `husk pod run --detach`: the init
// container completes before the apps start, the apps share an emptyDir
// and localhost, the hostPort answers on 127.0.0.1, the resources land in
// the cgroups, the inspect and debug commands work on it, and
// `husk pod rm` leaves nothing.
func TestPodYAML(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	h := newHuskCLI(t, d)
	hostPort := 33080 + os.Getpid()%1000
	manifest := strings.NewReplacer("IMAGE", ref, "HOSTPORT", strconv.Itoa(hostPort)).Replace(podYAML)
	file := writeManifest(t, d.Dir, "pod.yaml", manifest)

	out, errOut, code := h.run("", "pod", "run", "--detach", "-f", file)
	if code != 0 {
		t.Fatalf("pod run: exit %d\nstdout:\n%s\nstderr:\n%s\ndaemon log:\n%s", code, out, errOut, tail(d.Log(), 50))
	}
	t.Logf("husk pod run --detach:\n%s%s", out, errOut)
	// No cluster DNS: the ClusterFirst default is reported, not dropped.
	if !strings.Contains(errOut, "warning: spec.dnsPolicy: ClusterFirst needs a cluster's DNS") {
		t.Errorf("no dnsPolicy warning; stderr:\n%s", errOut)
	}
	fields := strings.Fields(strings.TrimSpace(out))
	if len(fields) < 4 || fields[0] != "pod" || fields[1] != "husk-test/yamlpod" {
		t.Fatalf("pod run output %q", out)
	}
	podID := fields[len(fields)-1]

	ctx := ctxT(t, 2*time.Minute)
	ps, err := d.RT.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: podID})
	if err != nil {
		t.Fatalf("status of the pod husk pod run reported: %v", err)
	}
	uid := ps.Status.Metadata.Uid
	logDir := filepath.Join(h.logRoot, "husk-test_yamlpod_"+uid)
	volDir := filepath.Join(h.stateDir, "pods", uid, "volumes", "shared")
	if ps.Status.Labels["app"] != "yamlpod" {
		t.Errorf("pod labels %v", ps.Status.Labels)
	}

	ctrs, err := d.RT.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: podID}})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, c := range ctrs.Containers {
		ids[c.Metadata.Name] = c.Id
	}
	if len(ids) != 3 || ids["init"] == "" || ids["server"] == "" || ids["client"] == "" {
		t.Fatalf("containers of the pod: %v", ids)
	}
	status := func(name string) *runtimeapi.ContainerStatus {
		t.Helper()
		r, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ids[name]})
		if err != nil {
			t.Fatalf("status of %s: %v", name, err)
		}
		return r.Status
	}

	// The init container ran to completion before either app started.
	ini := status("init")
	if ini.State != runtimeapi.ContainerState_CONTAINER_EXITED || ini.ExitCode != 0 {
		t.Fatalf("init container: state %v exit %d", ini.State, ini.ExitCode)
	}
	for _, app := range []string{"server", "client"} {
		st := status(app)
		if st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Fatalf("%s: state %v", app, st.State)
		}
		if st.StartedAt <= ini.FinishedAt {
			t.Errorf("%s started at %d, before the init container finished at %d", app, st.StartedAt, ini.FinishedAt)
		}
		if want := filepath.Join(logDir, app, "0.log"); st.LogPath != want {
			t.Errorf("%s log path %q, want %q", app, st.LogPath, want)
		}
	}
	// The same order seen from inside, through the emptyDir on the host:
	// each app found the init container's file when it started.
	for _, f := range []string{"server-saw-init", "client-saw-init"} {
		waitFor(t, 10*time.Second, f+" in the emptyDir", func() bool {
			b, err := os.ReadFile(filepath.Join(volDir, f))
			return err == nil && string(b) == "done\n"
		})
	}

	// The client fetched the server's page over the pod's localhost: its
	// log says so. husk logs finds the container by name.
	waitFor(t, 20*time.Second, "the client to reach the server", func() bool {
		out, _, _ := h.run("", "logs", "client")
		return strings.Contains(out, "hello-from-8080-$(LATER)") && strings.Contains(out, "client-done")
	})
	if out := h.ok("logs", "--tail", "1", "yamlpod/client"); out != "client-done\n" {
		t.Errorf("logs --tail 1: %q", out)
	}
	if out := h.ok("logs", "init"); out != "init-ran\n" {
		t.Errorf("logs of the init container: %q", out)
	}
	if out := h.ok("logs", "--timestamps", "--since", "10m", "init"); !strings.HasSuffix(out, " init-ran\n") || !strings.HasPrefix(out, time.Now().Format("2006-")) {
		t.Errorf("logs --timestamps --since 10m: %q", out)
	}
	if out := h.ok("logs", "--since", "1ns", "init"); out != "" {
		t.Errorf("logs --since 1ns printed %q", out)
	}

	// The apps share the emptyDir: the server sees the client's file.
	if out := h.ok("exec", "server", "--", "cat", "/shared/from-client"); out != "client-file\n" {
		t.Errorf("exec cat of the client's file in the server: %q", out)
	}
	// exec passes the command's exit status and stderr through.
	out, errOut, code = h.run("", "exec", "client", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
	if code != 3 || out != "out\n" || errOut != "err\n" {
		t.Errorf("exec exit 3: code %d stdout %q stderr %q", code, out, errOut)
	}
	// env with $(VAR) references, as kubelet expands them.
	if out := h.ok("exec", "server", "--", "sh", "-c", "echo $PORT $GREETING"); out != "8080 hello-from-8080-$(LATER)\n" {
		t.Errorf("env in the server: %q", out)
	}

	// The hostPort answers on the host's loopback.
	hc := http.Client{Timeout: 5 * time.Second}
	var body []byte
	waitFor(t, 10*time.Second, "the hostPort to answer", func() bool {
		resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/", hostPort))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK
	})
	if strings.TrimSpace(string(body)) != "hello-from-8080-$(LATER)" {
		t.Errorf("hostPort %d served %q", hostPort, body)
	}

	// Resources as kubelet computes them: 250m → 256 shares, a 500m
	// limit → 50ms of each 100ms, 64Mi memory limit.
	cg := "/husk/" + podID + "/" + ids["server"]
	for file, want := range map[string]string{"cpu.shares": "256", "cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000"} {
		if got := cgroupFile(t, "cpu", cg, file); got != want {
			t.Errorf("server %s = %s, want %s", file, got, want)
		}
	}
	if got := memoryLimit(t, cg); got != 64<<20 {
		t.Errorf("server memory limit %d, want %d", got, 64<<20)
	}
	// The client has no requests: the minimum shares and no quota.
	ccg := "/husk/" + podID + "/" + ids["client"]
	if got := cgroupFile(t, "cpu", ccg, "cpu.shares"); got != "2" {
		t.Errorf("client cpu.shares = %s, want 2", got)
	}
	if got := cgroupFile(t, "cpu", ccg, "cpu.cfs_quota_us"); got != "-1" {
		t.Errorf("client cpu.cfs_quota_us = %s, want -1", got)
	}

	// ps, pods, pod ls, inspect.
	psOut := h.ok("ps")
	t.Logf("husk ps:\n%s", psOut)
	for _, want := range []string{"server", "client", "yamlpod", "RUNNING", shortID(podID)} {
		if !strings.Contains(psOut, want) {
			t.Errorf("husk ps lacks %q:\n%s", want, psOut)
		}
	}
	if strings.Contains(psOut, "init") {
		t.Errorf("husk ps without -a lists the exited init container:\n%s", psOut)
	}
	if out := h.ok("ps", "-a", "--name", "^ini"); !strings.Contains(out, "EXITED") || strings.Contains(out, "server") {
		t.Errorf("husk ps -a --name ^ini:\n%s", out)
	}
	var listed struct {
		Containers []struct {
			ID       string `json:"id"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		} `json:"containers"`
	}
	if err := json.Unmarshal([]byte(h.ok("ps", "-o", "json", "--pod", "husk-test/yamlpod")), &listed); err != nil || len(listed.Containers) != 2 {
		t.Errorf("ps -o json --pod: %v, %+v", err, listed)
	}
	if out := h.ok("pods", "--name", "yamlpod"); !strings.Contains(out, "Ready") || !strings.Contains(out, "husk-test") {
		t.Errorf("husk pods:\n%s", out)
	}
	if out := h.ok("pod", "ls"); !strings.Contains(out, "yamlpod") || !strings.Contains(out, "2/3") {
		t.Errorf("husk pod ls:\n%s", out)
	} else {
		t.Logf("husk pod ls:\n%s", out)
	}
	var insp struct {
		Status struct {
			ID       string `json:"id"`
			State    string `json:"state"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Resources struct {
				Linux struct {
					CPUShares string `json:"cpuShares"`
				} `json:"linux"`
			} `json:"resources"`
		} `json:"status"`
		Info map[string]json.RawMessage `json:"info"`
	}
	if err := json.Unmarshal([]byte(h.ok("inspect", ids["server"][:8])), &insp); err != nil {
		t.Fatalf("inspect: %v", err)
	}
	if insp.Status.ID != ids["server"] || insp.Status.State != "CONTAINER_RUNNING" || insp.Status.Metadata.Name != "server" {
		t.Errorf("inspect of the server: %+v", insp.Status)
	}
	if out := h.ok("inspect", "--type", "pod", "yamlpod", "-o", "yaml"); !strings.Contains(out, "name: yamlpod") || !strings.Contains(out, "SANDBOX_READY") {
		t.Errorf("inspect --type pod -o yaml:\n%s", out)
	}

	// Errors are one line: what failed, the gRPC code and the message.
	_, errOut, code = h.run("", "logs", "no-such-container")
	if code == 0 || errOut != "husk: container \"no-such-container\": not found\n" {
		t.Errorf("logs of a missing container: exit %d, stderr %q", code, errOut)
	}
	cmd := exec.Command(filepath.Join(binDir(t), "husk"), "--endpoint", "unix://"+filepath.Join(d.Dir, "nothing.sock"), "ps")
	b, err := cmd.CombinedOutput()
	if err == nil || strings.Count(string(b), "\n") != 1 || !strings.HasPrefix(string(b), "husk: list containers: Unavailable: ") {
		t.Errorf("ps against a missing socket: %v, output %q", err, b)
	}
	// A pod of the same name is refused, not run twice.
	if _, errOut, code := h.run("", "pod", "run", "--detach", "-f", file); code == 0 || !strings.Contains(errOut, "already exists") {
		t.Errorf("second pod run of the same pod: exit %d, stderr %q", code, errOut)
	}

	// pod rm stops and removes everything: the sandbox and what the CLI
	// made for it (emptyDir, state, logs).
	if out := h.ok("pod", "rm", "yamlpod"); strings.TrimSpace(out) != podID {
		t.Errorf("pod rm printed %q, want the pod ID", out)
	}
	assertPodGone(t, d, podID)
	for _, p := range []string{filepath.Join(h.stateDir, "pods", uid), logDir} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after pod rm (stat: %v)", p, err)
		}
	}
	assertDaemonClean(t, d)
}

// TestPodYAMLForeground runs pods in the foreground: a volume that needs a
// cluster is reported with its field path and skipped while the rest runs,
// OnFailure restarts a failed container after kubelet's back-off, the
// pod's end ends husk pod run, and Ctrl-C stops and removes a pod.
func TestPodYAMLForeground(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	h := newHuskCLI(t, d)
	manifest := strings.ReplaceAll(`apiVersion: v1
kind: Pod
metadata: {name: secretpod}
spec:
  restartPolicy: OnFailure
  dnsPolicy: Default
  volumes:
  - {name: creds, persistentVolumeClaim: {claimName: creds}}
  - {name: data, emptyDir: {}}
  containers:
  - name: main
    image: IMAGE
    command: [sh, -c, "if [ -f /data/once ]; then echo second-run; exit 0; fi; touch /data/once; echo first-run; ls /creds 2>&1 || echo no-creds; exit 1"]
    volumeMounts:
    - {name: creds, mountPath: /creds}
    - {name: data, mountPath: /data}
`, "IMAGE", ref)
	file := writeManifest(t, d.Dir, "secret.yaml", manifest)
	start := time.Now()
	out, errOut, code := h.run("", "pod", "run", "-f", file)
	if code != 0 {
		t.Fatalf("pod run: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"warning: spec.volumes[0].persistentVolumeClaim: PersistentVolumeClaims need a cluster; volume skipped\n",
		"warning: spec.containers[0].volumeMounts[0]: volume \"creds\" was skipped",
		"exited with code 1 (Error); restarting in",
		"pod default/secretpod completed",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "dnsPolicy") {
		t.Errorf("dnsPolicy Default warned about:\n%s", errOut)
	}
	for _, want := range []string{"[main] first-run\n", "[main] no-creds\n", "[main] second-run\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	t.Logf("husk pod run (foreground):\n%s%s", out, errOut)
	if took := time.Since(start); took < 10*time.Second {
		t.Errorf("restart after %v: kubelet's back-off is 10s", took)
	}
	// The pod ended, so it was removed with its CLI state.
	resp, err := d.RT.ListPodSandbox(ctxT(t, 10*time.Second), &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(resp.Items) != 0 {
		t.Fatalf("pods left after the pod completed: %v %v", resp.GetItems(), err)
	}
	if ents, _ := os.ReadDir(filepath.Join(h.stateDir, "pods")); len(ents) != 0 {
		t.Errorf("CLI state left: %v", ents)
	}

	// A failing init container stops the pod: reported with its log, and
	// the pod removed.
	failing := writeManifest(t, d.Dir, "failing.yaml", strings.ReplaceAll(`kind: Pod
metadata: {name: failinit}
spec:
  dnsPolicy: Default
  initContainers:
  - {name: setup, image: IMAGE, command: [sh, -c, "echo setting-up; echo cannot-set-up >&2; exit 7"]}
  containers:
  - {name: app, image: IMAGE, command: [sleep, "3600"]}
`, "IMAGE", ref))
	out, errOut, code = h.run("", "pod", "run", "-f", failing)
	// The two streams' lines may be logged in either order.
	if code == 0 || !strings.HasPrefix(errOut, "husk: init container setup of pod default/failinit failed: exit code 7 (Error); its last log lines:\n") ||
		!strings.Contains(errOut, "\nsetting-up\n") || !strings.Contains(errOut, "\ncannot-set-up\n") {
		t.Errorf("failing init container: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	resp, err = d.RT.ListPodSandbox(ctxT(t, 10*time.Second), &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(resp.Items) != 0 {
		t.Fatalf("pods left after a failed init container: %v %v", resp.GetItems(), err)
	}

	// Ctrl-C stops and removes a running pod.
	long := writeManifest(t, d.Dir, "long.yaml", strings.ReplaceAll(`kind: Pod
metadata: {name: longpod}
spec:
  terminationGracePeriodSeconds: 1
  dnsPolicy: Default
  containers:
  - {name: sleeper, image: IMAGE, command: [sh, -c, "echo sleeping; exec sleep 3600"]}
`, "IMAGE", ref))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := h.command(ctx, "pod", "run", "-f", long)
	var sout, serr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &sout, &serr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the sleeper's log line", func() bool { return strings.Contains(sout.String(), "[sleeper] sleeping") })
	_ = cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Errorf("pod run after SIGINT: %v\nstderr:\n%s", err, serr.String())
	}
	if !strings.Contains(serr.String(), "stopping pod default/longpod") {
		t.Errorf("stderr after SIGINT:\n%s", serr.String())
	}
	resp, err = d.RT.ListPodSandbox(ctxT(t, 10*time.Second), &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(resp.Items) != 0 {
		t.Fatalf("pods left after Ctrl-C: %v %v", resp.GetItems(), err)
	}
	assertDaemonClean(t, d)
}

func shortID(id string) string {
	if len(id) > 13 {
		return id[:13]
	}
	return id
}
