package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// endpointCLI runs bin/husk's CRI client commands against one endpoint,
// with the pod commands' state and log dirs in dir.
type endpointCLI struct {
	t        *testing.T
	endpoint string
	dir      string
}

// command is husk with the endpoint, and the pod commands' dirs for
// `pod` and `ps` (which shows what husk pod run's supervisor knows).
func (c *endpointCLI) command(ctx context.Context, args ...string) *exec.Cmd {
	var full []string
	if c.endpoint != "" {
		full = []string{"--endpoint", c.endpoint}
	}
	stateDir := filepath.Join(c.dir, "cli-state")
	switch {
	case len(args) > 0 && args[0] == "pod":
		full = append(full, "pod", "--state-dir", stateDir, "--pod-log-root", filepath.Join(c.dir, "pod-logs"))
		args = args[1:]
	case len(args) > 0 && args[0] == "ps":
		full = append(full, "ps", "--state-dir", stateDir)
		args = args[1:]
	}
	return exec.CommandContext(ctx, filepath.Join(binDir(c.t), "husk"), append(full, args...)...)
}

func (c *endpointCLI) run(args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := c.command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		c.t.Fatalf("husk %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func (c *endpointCLI) ok(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("husk --endpoint %s %s: exit %d\nstdout:\n%s\nstderr:\n%s", c.endpoint, strings.Join(args, " "), code, out, errOut)
	}
	return out
}

const cliPodYAML = `apiVersion: v1
kind: Pod
metadata:
  name: clipod
  namespace: husk-test
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: logger
    image: IMAGE
    command: [sh, -c, 'for i in 1 2 3; do echo line-$i; done; echo err-line >&2; exec sleep 3600']
  - name: once
    image: IMAGE
    command: [sh, -c, 'sleep 1; echo bye; exit 7']
`

// cliObservation is what the CLI shows of the pod and its container,
// without what differs by nature between runtimes and runs (IDs, times).
type cliObservation struct {
	PsRow, PodsRow     []string // table rows, ID and CREATED columns left out
	PsJSON             []string // name, state, image of each container
	PodsJSON           []string // namespace/name, state of each pod
	LogsOut, LogsErr   string
	ExecOut            string
	ExecFailCode       int
	InspectCtr         []string // metadata.name, state, image, log path's base, pid > 0
	InspectPod         []string // namespace/name, state, IP in the subnet
	OnceFollow         string   // husk logs -f of a container that exits: returns once it has
	OnceExited         []string // husk ps -a --state exited row; inspect's exit code
	PsAfterRm, PodsRmd string
}

// TestCLIAgainstRuntimes is issue 5's acceptance: the same husk ps, pods,
// logs, exec and inspect commands work against containerd as against husk.
// One manifest runs on an isolated husk and an isolated containerd (same
// registry, same image, same CNI plugins) through `husk pod run --detach`,
// and every command must show the same on both.
func TestCLIAgainstRuntimes(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	ctrd := StartContainerd(t)
	runtimes := []struct {
		name, endpoint, subnet, dir string
	}{
		{"husk", "unix://" + d.Socket, d.Subnet, d.Dir},
		{"containerd", ctrd.Endpoint(), ctrd.Subnet, ctrd.Dir},
	}
	obs := map[string]*cliObservation{}
	for _, rt := range runtimes {
		t.Run(rt.name, func(t *testing.T) {
			c := &endpointCLI{t: t, endpoint: rt.endpoint, dir: rt.dir}
			o := &cliObservation{}
			obs[rt.name] = o
			manifest := filepath.Join(rt.dir, "clipod.yaml")
			if err := os.WriteFile(manifest, []byte(strings.ReplaceAll(cliPodYAML, "IMAGE", ref)), 0o644); err != nil {
				t.Fatal(err)
			}
			out := c.ok("pod", "run", "--detach", "-f", manifest)
			if !strings.Contains(out, "pod husk-test/clipod started: ") {
				t.Fatalf("pod run: %q", out)
			}

			// logs: the container writes its lines once and sleeps; wait
			// until all are there (it may not have run yet).
			deadline := time.Now().Add(20 * time.Second)
			for {
				o.LogsOut, o.LogsErr, _ = c.run("logs", "logger")
				if strings.Contains(o.LogsErr, "err-line") || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if o.LogsOut != "line-1\nline-2\nline-3\n" || o.LogsErr != "err-line\n" {
				t.Errorf("husk logs logger: stdout %q stderr %q, want the three lines and err-line", o.LogsOut, o.LogsErr)
			}

			// ps and pods tables: one row each under the header.
			o.PsRow = tableRow(t, c.ok("ps", "--name", "^logger$"), 0, 2, 6)
			// READY "-": a detached pod has no supervisor probing it.
			if want := []string{ref, "RUNNING", "logger", "0", "clipod", "-"}; !reflect.DeepEqual(o.PsRow, want) {
				t.Errorf("husk ps row %q, want %q", o.PsRow, want)
			}
			o.PodsRow = tableRow(t, c.ok("pods"), 0, 1)
			if want := []string{"Ready", "clipod", "husk-test", "0", "(default)"}; !reflect.DeepEqual(o.PodsRow, want) {
				t.Errorf("husk pods row %q, want %q", o.PodsRow, want)
			}
			var ps struct {
				Containers []struct {
					Metadata struct{ Name string }  `json:"metadata"`
					State    string                 `json:"state"`
					Image    struct{ Image string } `json:"image"`
				} `json:"containers"`
			}
			mustJSON(t, c.ok("ps", "--name", "^logger$", "-o", "json"), &ps)
			for _, ct := range ps.Containers {
				o.PsJSON = append(o.PsJSON, ct.Metadata.Name, ct.State, fmt.Sprint(ct.Image.Image != ""))
			}
			var pods struct {
				Items []struct {
					Metadata struct{ Name, Namespace string } `json:"metadata"`
					State    string                           `json:"state"`
				} `json:"items"`
			}
			mustJSON(t, c.ok("pods", "-o", "json"), &pods)
			for _, p := range pods.Items {
				o.PodsJSON = append(o.PodsJSON, p.Metadata.Namespace+"/"+p.Metadata.Name, p.State)
			}

			// exec: output, and the command's exit code as husk exec's.
			o.ExecOut = c.ok("exec", "logger", "--", "echo", "hi")
			if o.ExecOut != "hi\n" {
				t.Errorf("husk exec logger -- echo hi: %q", o.ExecOut)
			}
			_, _, o.ExecFailCode = c.run("exec", "clipod/logger", "--", "sh", "-c", "exit 3")
			if o.ExecFailCode != 3 {
				t.Errorf("husk exec ... sh -c 'exit 3': exit code %d, want 3", o.ExecFailCode)
			}

			// inspect, of the container and of the pod.
			var ic struct {
				Status struct {
					Metadata struct{ Name string }  `json:"metadata"`
					State    string                 `json:"state"`
					Image    struct{ Image string } `json:"image"`
					LogPath  string                 `json:"logPath"`
				} `json:"status"`
				Info struct {
					Info struct {
						Pid int `json:"pid"`
					} `json:"info"`
				} `json:"info"`
			}
			mustJSON(t, c.ok("inspect", "logger"), &ic)
			o.InspectCtr = []string{ic.Status.Metadata.Name, ic.Status.State, ic.Status.Image.Image,
				filepath.Base(ic.Status.LogPath), fmt.Sprint(ic.Info.Info.Pid > 0)}
			if want := []string{"logger", "CONTAINER_RUNNING", ref, "0.log", "true"}; !reflect.DeepEqual(o.InspectCtr, want) {
				t.Errorf("husk inspect logger: %q, want %q", o.InspectCtr, want)
			}
			var ip struct {
				Status struct {
					Metadata struct{ Name, Namespace string } `json:"metadata"`
					State    string                           `json:"state"`
					Network  struct{ IP string }              `json:"network"`
				} `json:"status"`
			}
			mustJSON(t, c.ok("inspect", "--type", "pod", "clipod"), &ip)
			_, subnet, err := net.ParseCIDR(rt.subnet)
			if err != nil {
				t.Fatal(err)
			}
			o.InspectPod = []string{ip.Status.Metadata.Namespace + "/" + ip.Status.Metadata.Name, ip.Status.State,
				fmt.Sprint(subnet.Contains(net.ParseIP(ip.Status.Network.IP)))}
			if want := []string{"husk-test/clipod", "SANDBOX_READY", "true"}; !reflect.DeepEqual(o.InspectPod, want) {
				t.Errorf("husk inspect --type pod clipod: %q (IP %q, subnet %s), want %q", o.InspectPod, ip.Status.Network.IP, rt.subnet, want)
			}

			// logs -f follows a container to its exit, then returns; the
			// exited container is listed with its exit code.
			o.OnceFollow = c.ok("logs", "-f", "once")
			if o.OnceFollow != "bye\n" {
				t.Errorf("husk logs -f once: %q, want bye", o.OnceFollow)
			}
			var once struct {
				Status struct {
					State    string `json:"state"`
					ExitCode int    `json:"exitCode"`
				} `json:"status"`
			}
			mustJSON(t, c.ok("inspect", "once"), &once)
			o.OnceExited = append(tableRow(t, c.ok("ps", "--state", "exited"), 0, 2, 6), once.Status.State, fmt.Sprint(once.Status.ExitCode))
			if want := []string{ref, "EXITED", "once", "0", "clipod", "-", "CONTAINER_EXITED", "7"}; !reflect.DeepEqual(o.OnceExited, want) {
				t.Errorf("exited container once: ps row and inspect %q, want %q", o.OnceExited, want)
			}

			// pod rm leaves nothing on the runtime.
			c.ok("pod", "rm", "clipod")
			o.PsAfterRm = c.ok("ps", "-a", "-q")
			o.PodsRmd = c.ok("pods", "-q")
			if o.PsAfterRm != "" || o.PodsRmd != "" {
				t.Errorf("after husk pod rm: ps -a -q %q, pods -q %q, want none", o.PsAfterRm, o.PodsRmd)
			}
		})
	}
	for name, o := range obs {
		t.Logf("%s: %+v", name, *o)
	}
	if h, c := obs["husk"], obs["containerd"]; h != nil && c != nil && !reflect.DeepEqual(h, c) {
		t.Errorf("the CLI shows husk and containerd differently:\nhusk:       %+v\ncontainerd: %+v", *h, *c)
	}
}

// tableRow returns the only data row of a CLI table, split on runs of two
// or more spaces, without the columns at the given indexes (IDs, times).
func tableRow(t *testing.T, table string, drop ...int) []string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a header and one row, got:\n%s", table)
	}
	var row []string
	for i, f := range splitColumns(lines[1]) {
		if !containsInt(drop, i) {
			row = append(row, f)
		}
	}
	return row
}

func splitColumns(line string) []string {
	var out []string
	for _, f := range strings.Split(line, "   ") { // tabwriter pads with 3+ spaces
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
}

// TestBenchCommand runs `husk bench` against an isolated husk and an
// isolated containerd with small numbers: every metric has a row for both,
// the values are plausible, and neither runtime keeps a pod afterwards,
// also when the bench is interrupted halfway.
func TestBenchCommand(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	ctrd := StartContainerd(t)
	eps := []string{"--endpoint", "husk=unix://" + d.Socket, "--endpoint", "containerd=" + ctrd.Endpoint()}
	// No global --endpoint: bench's own, repeated, names the runtimes.
	c := &endpointCLI{t: t, dir: d.Dir}
	assertNoPods := func(when string) {
		t.Helper()
		for name, rt := range map[string]runtimeapi.RuntimeServiceClient{"husk": d.RT, "containerd": ctrd.RT} {
			pods, err := rt.ListPodSandbox(ctxT(t, 10*time.Second), &runtimeapi.ListPodSandboxRequest{})
			if err != nil {
				t.Fatal(err)
			}
			ctrs, err := rt.ListContainers(ctxT(t, 10*time.Second), &runtimeapi.ListContainersRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if len(pods.Items) > 0 || len(ctrs.Containers) > 0 {
				t.Errorf("%s: %s still has %d pods and %d containers", when, name, len(pods.Items), len(ctrs.Containers))
			}
		}
	}

	args := append([]string{"bench", "--image", ref, "--command", "sleep 3600", "--pods", "3", "--concurrent-pods", "4",
		"--concurrency", "2", "--list-containers", "3", "--list-calls", "5", "--stats-calls", "2", "--settle", "1s"}, eps...)
	var rep struct {
		Endpoints []struct{ Name, RuntimeName string } `json:"endpoints"`
		Rows      []struct {
			Metric, Unit, Endpoint, Note string
			N                            int
			P50, P99, Ratio              float64
		} `json:"rows"`
		Warnings []string `json:"warnings"`
	}
	mustJSON(t, c.ok(append(args, "-o", "json")...), &rep)
	assertNoPods("after husk bench")
	if len(rep.Endpoints) != 2 || rep.Endpoints[0].RuntimeName != "husk" || rep.Endpoints[1].RuntimeName != "containerd" {
		t.Errorf("endpoints: %+v", rep.Endpoints)
	}
	if len(rep.Warnings) > 0 {
		t.Errorf("warnings: %q", rep.Warnings)
	}
	wantN := map[string]int{
		"pod start (run+create+start), sequential": 3, "pod stop+remove, sequential": 3,
		"pod start, concurrency 2": 4, "pod stop+remove, concurrency 2": 4, "pods started per second, concurrency 2": 1,
		"ListContainers, 3 containers present": 5, "ListPodSandbox, 3 pods present": 5,
		"relist (ListPodSandbox+ListContainers), 3 pods": 5, "ListContainerStats, 3 containers present": 2,
		"3 pods started, concurrency 2, wall": 1, "3 pods stopped and removed, concurrency 2, wall": 1,
		"monitor RSS per pod": 3, "monitor PSS per pod": 3, "infra (pause) PSS per pod": 3, "daemon RSS": 1, "daemon PSS": 1,
	}
	seen := map[string][]string{}
	for i, r := range rep.Rows {
		metric := strings.TrimSpace(r.Metric)
		seen[metric] = append(seen[metric], r.Endpoint)
		if n, ok := wantN[metric]; ok && r.N != n {
			t.Errorf("%s on %s: %d samples, want %d", metric, r.Endpoint, r.N, n)
		}
		var lo, hi float64
		switch r.Unit {
		case "ms":
			lo, hi = 0.01, 60000
		case "MiB":
			lo, hi = 0.01, 1024
		case "KiB":
			lo, hi = 1, 1<<20
		case "pods/s":
			lo, hi = 0.01, 10000
		case "s":
			lo, hi = 0.001, 3600
		default:
			t.Errorf("%s: unit %q", metric, r.Unit)
		}
		if r.P50 < lo || r.P50 > hi || r.P99 < r.P50 {
			t.Errorf("%s on %s: p50 %v p99 %v %s, not plausible", metric, r.Endpoint, r.P50, r.P99, r.Unit)
		}
		if i%2 == 0 && r.Ratio != 1 || r.Ratio <= 0 {
			t.Errorf("%s on %s: ratio %v", metric, r.Endpoint, r.Ratio)
		}
		if metric == "monitor PSS per pod" {
			shim := map[string]string{"husk": "husk-shim", "containerd": "containerd-shim"}[r.Endpoint]
			if !strings.Contains(r.Note, "3 "+shim) {
				t.Errorf("monitor of %s: %q, want 3 %s processes", r.Endpoint, r.Note, shim)
			}
		}
	}
	for m := range wantN {
		if !reflect.DeepEqual(seen[m], []string{"husk", "containerd"}) {
			t.Errorf("metric %q: rows for %v, want husk then containerd", m, seen[m])
		}
	}

	// The table: a row of each endpoint under each metric.
	table := c.ok("bench", "--image", ref, "--command", "sleep 3600", "--pods", "1", "--concurrent-pods", "0",
		"--list-containers", "1", "--list-calls", "1", "--settle", "0s", eps[0], eps[1], eps[2], eps[3])
	assertNoPods("after husk bench (table)")
	t.Logf("husk bench table:\n%s", table)
	for _, metric := range []string{"pod start (run+create+start), sequential (ms)", "daemon PSS (MiB)"} {
		i := strings.Index(table, "\n"+metric)
		if i < 0 {
			t.Errorf("table has no %q row:\n%s", metric, table)
			continue
		}
		lines := strings.SplitN(table[i+1:], "\n", 3)
		if !strings.Contains(lines[0], " husk ") || !strings.Contains(lines[1], " containerd ") || !strings.HasPrefix(lines[1], "   ") {
			t.Errorf("metric %q: want a husk row then a containerd row:\n%s\n%s", metric, lines[0], lines[1])
		}
	}

	// Interrupted once its first pods exist, it removes them and fails.
	cmd := exec.Command(filepath.Join(binDir(t), "husk"), append([]string{"bench", "--image", ref, "--command", "sleep 3600",
		"--pods", "0", "--concurrent-pods", "40", "--concurrency", "4", "--list-containers", "0"}, eps...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		pods, err := ctrd.RT.ListPodSandbox(ctxT(t, 10*time.Second), &runtimeapi.ListPodSandboxRequest{
			Filter: &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"husk-bench": "true"}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if err == nil || !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("interrupted husk bench: %v, stderr:\n%s", err, stderr.String())
	}
	assertNoPods("after an interrupted husk bench")
}
