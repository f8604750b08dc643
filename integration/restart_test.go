package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestDaemonKillRestart kills the daemon with SIGKILL while pods run: the
// containers keep running, the restarted daemon reports them correctly and
// still stops and removes them without leaving anything.
func TestDaemonKillRestart(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	pull(t, d, ref)

	var pods, ctrs []string
	for _, name := range []string{"survivor-a", "survivor-b"} {
		pod := podConfig(name)
		podID := runPod(t, d, pod)
		pods = append(pods, podID)
		ctrs = append(ctrs, runContainer(t, d, podID, pod, ctrConfig("sleeper", ref, "sh", "-c", "echo started; exec sleep 3600")))
	}
	// One container that exits while the daemon is down.
	pod := podConfig("short")
	shortPod := runPod(t, d, pod)
	pods = append(pods, shortPod)
	short := runContainer(t, d, shortPod, pod, ctrConfig("short", ref, "sh", "-c", "sleep 1; exit 7"))

	d.Kill()
	if pids := shimPids(d.State); len(pids) != 3 {
		t.Fatalf("after the daemon's SIGKILL, %d shims run, want 3", len(pids))
	}
	time.Sleep(1500 * time.Millisecond) // the short container exits meanwhile
	d.Start()
	ctx := ctxT(t, 2*time.Minute)

	for i, id := range ctrs {
		cs, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
		if err != nil {
			t.Fatalf("status after restart: %v", err)
		}
		if cs.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Fatalf("container %d after restart: %v", i, cs.Status.State)
		}
		ex, err := d.RT.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"echo", "alive"}, Timeout: 10})
		if err != nil || strings.TrimSpace(string(ex.Stdout)) != "alive" {
			t.Fatalf("exec after restart: %v %q", err, ex.GetStdout())
		}
	}
	for _, id := range pods {
		ps, err := d.RT.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
		if err != nil || ps.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
			t.Fatalf("pod after restart: %v %v", err, ps.GetStatus().GetState())
		}
	}
	cs, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: short})
	if err != nil {
		t.Fatal(err)
	}
	if cs.Status.State != runtimeapi.ContainerState_CONTAINER_EXITED || cs.Status.ExitCode != 7 || cs.Status.Reason != "Error" {
		t.Fatalf("container that exited while the daemon was down: %v exit %d reason %q", cs.Status.State, cs.Status.ExitCode, cs.Status.Reason)
	}
	list, err := d.RT.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil || len(list.Containers) != 3 {
		t.Fatalf("ListContainers after restart: %v, %d containers", err, len(list.GetContainers()))
	}

	// The pull's layers were put in place without waiting for the disk
	// (image/flush.go); a SIGKILL in the same boot loses none of them.
	if !imageTagged(t, d, ref) {
		t.Fatalf("image %s gone after the daemon's SIGKILL", ref)
	}

	// A graceful restart too, then stop and remove everything. The
	// graceful stop flushes the layers: no mark is left for the next start.
	d.Stop()
	if m := unflushedMarks(t, d.Root); len(m) > 0 {
		t.Errorf("layer index after a graceful stop: %v still marked unflushed", m)
	}
	d.Start()
	for i, podID := range pods {
		if i < len(ctrs) {
			if _, err := d.RT.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: ctrs[i], Timeout: 5}); err != nil {
				t.Fatal(err)
			}
		}
		removePod(t, d, podID)
	}
	assertDaemonClean(t, d)
}

// editRecord rewrites fields of a JSON record on disk.
func editRecord(t *testing.T, path string, set map[string]any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		if v == nil {
			delete(rec, k)
		} else {
			rec[k] = v
		}
	}
	if data, err = json.Marshal(rec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRecoverHalfMadePod puts the records on disk back to how a crash in
// the middle of RunPodSandbox and CreateContainer leaves them (state
// "creating", CNI not yet recorded) while everything they describe exists:
// the next daemon start removes it all. A container whose start the shim
// carried out but whose record was not yet updated is recovered running.
func TestRecoverHalfMadePod(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	pull(t, d, ref)
	pod := podConfig("halfmade")
	podID := runPod(t, d, pod)
	ctrID := runContainer(t, d, podID, pod, ctrConfig("c", ref, "sleep", "3600"))
	// A second pod whose container the shim started just before the crash,
	// while its record still said "created".
	pod2 := podConfig("started")
	pod2ID := runPod(t, d, pod2)
	started := runContainer(t, d, pod2ID, pod2, ctrConfig("s", ref, "sleep", "3600"))
	d.Kill()
	editRecord(t, filepath.Join(d.Root, "pods", pod2ID, "containers", started, "container.json"), map[string]any{"state": "created", "started_at": nil})

	podDir := filepath.Join(d.Root, "pods", podID)
	editRecord(t, filepath.Join(podDir, "pod.json"), map[string]any{"state": "creating", "network_done": nil, "ips": nil})
	editRecord(t, filepath.Join(podDir, "containers", ctrID, "container.json"), map[string]any{"state": "creating"})
	d.Start()

	ctx := ctxT(t, time.Minute)
	pods, err := d.RT.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(pods.Items) != 1 || pods.Items[0].Id != pod2ID {
		t.Fatalf("pods after recovery: %v %v, want only %s", err, pods.GetItems(), pod2ID)
	}
	cs, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: started})
	if err != nil || cs.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING || cs.Status.StartedAt == 0 {
		t.Fatalf("container started just before the crash: %v %v", err, cs.GetStatus())
	}
	if out := strings.TrimSpace(execOut(t, d, started, "echo", "up")); out != "up" {
		t.Fatalf("exec after recovery: %q", out)
	}
	if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod2ID}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, d, pod2ID)
	if _, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ctrID}); status.Code(err) != codes.NotFound {
		t.Fatalf("half-made container after recovery: %v", err)
	}
	assertPodGone(t, d, podID)
	assertDaemonClean(t, d)
}

// unflushedMarks lists what the image store's layer index on disk marks as
// not yet flushed to disk: layers by chain id, blobs by digest.
func unflushedMarks(t *testing.T, root string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "layers", "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Layers map[string]struct {
			Unflushed string `json:"unflushed"`
		} `json:"layers"`
		UnflushedBlobs map[string]string `json:"unflushedBlobs"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		t.Fatal(err)
	}
	var out []string
	for chain, e := range idx.Layers {
		if e.Unflushed != "" {
			out = append(out, "layer "+chain)
		}
	}
	for d := range idx.UnflushedBlobs {
		out = append(out, "blob "+d)
	}
	return out
}
