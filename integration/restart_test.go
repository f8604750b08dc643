package integration

import (
	"strings"
	"testing"
	"time"

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

	// A graceful restart too, then stop and remove everything.
	d.Stop()
	d.Start()
	for i, podID := range pods {
		if i < len(ctrs) {
			if _, err := d.RT.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: ctrs[i], Timeout: 5}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := d.RT.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
			t.Fatal(err)
		}
		assertPodGone(t, d, podID)
	}
	assertDaemonClean(t, d)
}
