package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A disk that lied: the daemon is killed, one pod's record is found
// truncated at the next start. The daemon starts and serves the other pod
// (its container still running), reports the unreadable record (its log,
// Status verbose), touches nothing of that pod (its container still runs:
// none is lost), and husk doctor lists what is left of it, which --fix
// removes; after that and the other pod's removal nothing is left.
func TestUnreadableRecord(t *testing.T) {
	d := StartDaemon(t)
	ref := busyboxRef(t)
	pull(t, d, ref)

	podA, podB := podConfig("garbled"), podConfig("intact")
	idA, idB := runPod(t, d, podA), runPod(t, d, podB)
	ctrA := runContainer(t, d, idA, podA, ctrConfig("a", ref, "sleep", "600"))
	ctrB := runContainer(t, d, idB, podB, ctrConfig("b", ref, "sleep", "600"))
	pidA := containerPid(t, d, ctrA)

	d.Kill()
	rec := filepath.Join(d.Root, "pods", idA, "pod.json")
	b, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rec, b[:len(b)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	d.Start()

	ctx := ctxT(t, time.Minute)
	pl, err := d.RT.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(pl.Items) != 1 || pl.Items[0].Id != idB || pl.Items[0].State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("pods after the restart: %v %v; want only %s, ready", err, pl, idB)
	}
	st, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ctrB})
	if err != nil || st.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("the intact pod's container: %v %v", err, st)
	}
	if _, err := os.Stat(filepath.Join("/proc", pidA)); err != nil {
		t.Fatalf("the garbled pod's container (pid %s) is gone: the daemon touched a pod it could not read", pidA)
	}
	if !strings.Contains(d.Log(), "pod record unreadable") || !strings.Contains(d.Log(), idA) {
		t.Errorf("the daemon log does not report the unreadable record of %s", idA)
	}
	sr, err := d.RT.Status(ctx, &runtimeapi.StatusRequest{Verbose: true})
	if err != nil || !strings.Contains(sr.Info["unreadable_records"], idA) {
		t.Errorf("Status verbose unreadable_records = %q (%v), want %s named", sr.GetInfo()["unreadable_records"], err, idA)
	}

	stdout, stderr, err := runDoctor(t, d, "-o", "json")
	var rep doctorOut
	if jerr := json.Unmarshal([]byte(stdout), &rep); jerr != nil {
		t.Fatalf("doctor -o json (exit %d): %v\n%s%s", exitCode(err), jerr, stdout, stderr)
	}
	found := false
	for _, l := range rep.Leftovers {
		if l.Path == filepath.Join(d.Root, "pods", idA) && strings.Contains(l.Reason, "unreadable record") {
			found = true
		}
		if l.Pod == idB {
			t.Errorf("doctor calls the intact pod's %s %s a leftover", l.Kind, l.Path)
		}
	}
	if !found || exitCode(err) != 1 {
		t.Fatalf("doctor (exit %d) does not list the garbled pod's dir as unreadable:\n%s", exitCode(err), stdout)
	}
	if fixOut, stderr, err := runDoctor(t, d, "--fix"); err != nil {
		t.Fatalf("doctor --fix: %v\n%s%s", err, fixOut, stderr)
	}
	// Killed with its cgroup; gone once its new parent has reaped it.
	waitFor(t, 10*time.Second, "the garbled pod's container gone after doctor --fix", func() bool {
		b, err := os.ReadFile(filepath.Join("/proc", pidA, "stat"))
		return err != nil || strings.Contains(string(b), ") Z ")
	})
	if _, err := os.Stat(filepath.Join(d.Root, "pods", idA)); err == nil {
		t.Errorf("the garbled pod's dir is still there after doctor --fix")
	}
	st, err = d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ctrB})
	if err != nil || st.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("the intact pod's container after doctor --fix: %v %v", err, st)
	}
	removePod(t, d, idB)
	assertDaemonClean(t, d)
}

// containerPid is the host pid of a container's init, from ContainerStatus
// verbose (the "info" JSON crictl inspect shows).
func containerPid(t *testing.T, d *Daemon, id string) string {
	t.Helper()
	st, err := d.RT.ContainerStatus(ctxT(t, time.Minute), &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Pid int }
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || info.Pid <= 0 {
		t.Fatalf("no pid in ContainerStatus info %q: %v", st.Info["info"], err)
	}
	return strconv.Itoa(info.Pid)
}
