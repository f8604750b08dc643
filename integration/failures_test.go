package integration

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/husk-runtime/husk/integration/testenv"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func podState(t *testing.T, d *Daemon, id string) runtimeapi.PodSandboxState {
	t.Helper()
	st, err := d.RT.PodSandboxStatus(ctxT(t, 10*time.Second), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	return st.Status.State
}

// TestInfraAndShimDeath kills what a pod stands on. With the infra process
// gone the pod is NOTREADY (kubelet then recreates it). With the shim gone
// nothing can collect the containers' exits: they are reported exited with
// a reason naming the shim's death, the pod is NOTREADY, and removal still
// cleans up everything, the orphaned processes included.
func TestInfraAndShimDeath(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	pull(t, d, ref)
	ctx := ctxT(t, 2*time.Minute)

	infraPod := podConfig("infra-dies")
	infraID := runPod(t, d, infraPod)
	var info struct {
		Pid int `json:"pid"`
	}
	st, err := d.RT.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: infraID, Verbose: true})
	if err != nil || jsonUnmarshal(st.Info["info"], &info) != nil || info.Pid == 0 {
		t.Fatalf("infra pid: %v %v", err, st.GetInfo())
	}
	if err := syscall.Kill(info.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "pod NOTREADY after its infra died", func() bool {
		return podState(t, d, infraID) == runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	})

	shimPod := podConfig("shim-dies")
	shimID := runPod(t, d, shimPod)
	c := runContainer(t, d, shimID, shimPod, ctrConfig("orphan", ref, "sleep", "3600"))
	pids := shimPids(filepath.Join(d.State, "s", shimID[:12]+".sock"))
	if len(pids) != 1 {
		t.Fatalf("shim of the pod: %v", pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var cs *runtimeapi.ContainerStatus
	waitFor(t, 10*time.Second, "container reported exited after its shim died", func() bool {
		r, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c})
		cs = r.GetStatus()
		return err == nil && cs.State == runtimeapi.ContainerState_CONTAINER_EXITED
	})
	if cs.Reason != "ShimDied" || cs.Message == "" {
		t.Errorf("reason %q message %q, want the shim's death named", cs.Reason, cs.Message)
	}
	if s := podState(t, d, shimID); s != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("pod with a dead shim is %v", s)
	}
	for _, id := range []string{infraID, shimID} {
		if _, err := d.RT.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("stop %s: %v", id, err)
		}
		if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("remove %s: %v", id, err)
		}
		assertPodGone(t, d, id)
	}
	if dirs := testenv.CgroupDirs("/husk/" + shimID); len(dirs) > 0 {
		t.Errorf("orphaned processes' cgroups left: %v", dirs)
	}
	assertDaemonClean(t, d)
}
