package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestRuntimeHandlers runs pods under runc and crun (external OCI runtimes
// driven through their command lines), one under test-handler (husk-oci
// under another name), and refuses an unknown handler.
func TestRuntimeHandlers(t *testing.T) {
	for _, rt := range []string{"crun", "runc"} {
		if _, err := exec.LookPath(rt); err != nil {
			t.Fatalf("%s is not installed (make deps installs it): %v", rt, err)
		}
	}
	ref := busyboxRef(t)
	d := StartDaemon(t)
	pull(t, d, ref)
	ctx := ctxT(t, 3*time.Minute)

	// Status lists every handler with what its runtime can do: Debian's
	// crun 1.8 has no `features` command, so no rro is claimed for it.
	st, err := d.RT.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	handlers := map[string]*runtimeapi.RuntimeHandlerFeatures{}
	for _, h := range st.RuntimeHandlers {
		handlers[h.Name] = h.Features
	}
	for _, name := range []string{"", "crun", "runc", "test-handler"} {
		if handlers[name] == nil {
			t.Fatalf("Status lists no handler %q: %v", name, st.RuntimeHandlers)
		}
	}
	if !handlers[""].RecursiveReadOnlyMounts || !handlers["test-handler"].RecursiveReadOnlyMounts || handlers["crun"].UserNamespaces {
		t.Errorf("handler features: %v", st.RuntimeHandlers)
	}

	// An unknown handler: InvalidArgument naming it, nothing made.
	_, err = d.RT.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podConfig("nohandler"), RuntimeHandler: "kata-nope"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `"kata-nope"`) {
		t.Fatalf("unknown handler: want InvalidArgument naming it, got %v", err)
	}
	if pods, _ := os.ReadDir(filepath.Join(d.Root, "pods")); len(pods) > 0 {
		t.Fatalf("a refused pod left %d pod dirs", len(pods))
	}

	for _, name := range []string{"runc", "crun"} {
		t.Run(name, func(t *testing.T) { externalRuntimePod(t, d, ref, name) })
	}

	t.Run("test-handler", func(t *testing.T) {
		pod := podConfig("ontesthandler")
		resp, err := d.RT.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod, RuntimeHandler: "test-handler"})
		if err != nil {
			t.Fatalf("RunPodSandbox on test-handler: %v", err)
		}
		podID := resp.PodSandboxId
		c := runContainer(t, d, podID, pod, ctrConfig("app", ref, "sleep", "3600"))
		if _, err := os.Stat(filepath.Join(d.State, "oci", c)); err != nil {
			t.Errorf("test-handler is husk-oci, whose state is missing: %v", err)
		}
		ex, err := d.RT.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: c, Cmd: []string{"echo", "ok"}, Timeout: 10})
		if err != nil || string(ex.Stdout) != "ok\n" {
			t.Fatalf("ExecSync on test-handler: %v %+v", err, ex)
		}
		if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
			t.Fatal(err)
		}
		assertPodGone(t, d, podID)
	})
	assertDaemonClean(t, d)
}

// externalRuntimePod runs a pod under the external OCI runtime handler
// name and shows from the host that the runtime made its containers, that
// the shim is their parent, that logs, exec (plain and tty), update, stats
// and stop work, and that removal leaves nothing in the runtime's state.
func externalRuntimePod(t *testing.T, d *Daemon, ref, name string) {
	ctx := ctxT(t, 2*time.Minute)
	bin, _ := exec.LookPath(name)
	root := filepath.Join(d.State, "runtimes", name)
	pod := podConfig("on" + name)
	pod.LogDirectory = filepath.Join(d.Dir, "logs-"+name)
	resp, err := d.RT.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod, RuntimeHandler: name})
	if name == "crun" && crunRefusesHost() {
		// crun (every version: libcrun_cgroup_enter) refuses a hybrid
		// host whose unified mount carries any controller; this host's
		// carries hugetlb. husk passes crun's own words on and leaves
		// nothing.
		if err == nil || !strings.Contains(err.Error(), "crun run: cgroups in hybrid mode not supported") {
			t.Fatalf("crun on a hybrid host with controllers on cgroup2: want crun's refusal, got %v", err)
		}
		if left, _ := os.ReadDir(root); len(left) > 0 {
			t.Errorf("crun state left in %s: %v", root, left)
		}
		if pods, _ := os.ReadDir(filepath.Join(d.Root, "pods")); len(pods) > 0 {
			t.Errorf("a refused crun pod left %d pod dirs", len(pods))
		}
		t.Skip("host limit: crun refuses hybrid cgroups whose unified mount carries controllers (here: " + unifiedControllers() + ")")
	}
	if err != nil {
		t.Fatalf("RunPodSandbox on %s: %v", name, err)
	}
	podID := resp.PodSandboxId
	ps, err := d.RT.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: podID})
	if err != nil || ps.Status.RuntimeHandler != name || ps.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("PodSandboxStatus: %v %+v", err, ps.GetStatus())
	}
	cc := ctrConfig("app", ref, "sh", "-c", "echo hello-from-"+name+"; exec sleep 3600")
	cc.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20}
	c := runContainer(t, d, podID, pod, cc)

	// From the host: the runtime's own state names both containers
	// running, and their processes are children of the pod's shim.
	shim := shimPids(filepath.Join(d.State, "s", podID[:12]+".sock"))
	if len(shim) != 1 {
		t.Fatalf("shim pids %v", shim)
	}
	for _, id := range []string{podID, c} {
		out, err := exec.Command(bin, "--root", root, "state", id).Output()
		if err != nil {
			t.Fatalf("%s state %s: %v", name, id, err)
		}
		var state struct {
			Status string
			Pid    int
		}
		if err := json.Unmarshal(out, &state); err != nil || state.Status != "running" || state.Pid <= 0 {
			t.Fatalf("%s state %s: %v %s", name, id, err, out)
		}
		if pp := parentOf(t, state.Pid); pp != shim[0] {
			t.Errorf("%s (pid %d) has parent %d, want the shim %d", id, state.Pid, pp, shim[0])
		}
	}
	if _, err := os.Stat(filepath.Join(d.State, "oci", c)); !os.IsNotExist(err) {
		t.Errorf("a %s container has husk-oci state: %v", name, err)
	}

	// Logs, exec, stats, update and stop work as with husk-oci.
	logPath := filepath.Join(pod.LogDirectory, "app.log")
	waitFor(t, 10*time.Second, "the container's log", func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), "hello-from-"+name)
	})
	checkCRILog(t, logPath)
	ex, err := d.RT.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: c, Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}, Timeout: 10})
	if err != nil || ex.ExitCode != 3 || string(ex.Stdout) != "out\n" || string(ex.Stderr) != "err\n" {
		t.Fatalf("ExecSync under %s: %v %+v", name, err, ex)
	}
	_, err = d.RT.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: c, Cmd: []string{"/no/such/binary"}, Timeout: 10})
	if err == nil || !strings.Contains(err.Error(), name+" exec") {
		t.Errorf("exec of a missing binary under %s: want the runtime's error, got %v", name, err)
	}
	p := startPtyCrictl(t, d, "exec", "-it", c, "sh", "-c", "tty; echo tty-done")
	p.waitOutput(t, "tty-done")
	if out := p.output(); !strings.Contains(out, "/dev/pts/") {
		t.Errorf("tty exec under %s: %q", name, out)
	}
	p.wait(t)
	cgroup := "/husk/" + podID + "/" + c
	if got := memoryLimit(t, cgroup); got != 64<<20 {
		t.Fatalf("memory limit under %s: %d", name, got)
	}
	if _, err := d.RT.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{ContainerId: c,
		Linux: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 96 << 20}}); err != nil {
		t.Fatalf("update under %s: %v", name, err)
	}
	if got := memoryLimit(t, cgroup); got != 96<<20 {
		t.Fatalf("memory limit after update under %s: %d", name, got)
	}
	stats, err := d.RT.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: c})
	if err != nil || stats.Stats.GetMemory().GetWorkingSetBytes().GetValue() == 0 {
		t.Fatalf("ContainerStats under %s: %v %+v", name, err, stats.GetStats())
	}
	if _, err := d.RT.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: c, Timeout: 5}); err != nil {
		t.Fatal(err)
	}
	cs, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c})
	if err != nil || cs.Status.State != runtimeapi.ContainerState_CONTAINER_EXITED || cs.Status.ExitCode != 143 {
		t.Fatalf("stopped under %s: %v %+v", name, err, cs.GetStatus())
	}
	removePod(t, d, podID)
	if left, _ := os.ReadDir(root); len(left) > 0 {
		t.Errorf("%s state left in %s: %v", name, root, left)
	}
	if out, err := exec.Command(bin, "--root", root, "list", "-q").Output(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("%s list after removal: %v %q", name, err, out)
	}
}

// crunRefusesHost says whether this is a host crun cannot run on: hybrid
// cgroups with a controller on the unified mount.
func crunRefusesHost() bool { return unifiedControllers() != "" }

func unifiedControllers() string {
	b, _ := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
	return strings.TrimSpace(string(b))
}

// parentOf reads a process's parent pid from /proc.
func parentOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "PPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	t.Fatalf("no PPid in /proc/%d/status", pid)
	return 0
}
