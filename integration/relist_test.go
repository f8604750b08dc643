package integration

import (
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestRelistFollowsChanges: kubelet's relist (ListPodSandbox with no filter,
// ListContainers with an empty one) is answered from an encoding made
// once per change of the records. Every change shows in the next relist:
// a pod run, a container created, started, exited on its own (seen by the
// exit watcher, no RPC made), the pod stopped, then removed.
func TestRelistFollowsChanges(t *testing.T) {
	d := StartDaemon(t)
	ref := busyboxRef(t)
	pull(t, d, ref)
	ctx := ctxT(t, 3*time.Minute)
	relist := func() (map[string]runtimeapi.PodSandboxState, map[string]runtimeapi.ContainerState) {
		t.Helper()
		pr, err := d.RT.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
		if err != nil {
			t.Fatal(err)
		}
		cr, err := d.RT.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{}})
		if err != nil {
			t.Fatal(err)
		}
		pods, ctrs := map[string]runtimeapi.PodSandboxState{}, map[string]runtimeapi.ContainerState{}
		for _, p := range pr.Items {
			pods[p.Id] = p.State
		}
		for _, c := range cr.Containers {
			ctrs[c.Id] = c.State
		}
		return pods, ctrs
	}
	if pods, ctrs := relist(); len(pods) != 0 || len(ctrs) != 0 {
		t.Fatalf("fresh daemon lists %v, %v", pods, ctrs)
	}
	pod := podConfig("relist")
	podID := runPod(t, d, pod)
	if pods, _ := relist(); pods[podID] != runtimeapi.PodSandboxState_SANDBOX_READY || len(pods) != 1 {
		t.Fatalf("after RunPodSandbox: pods %v", pods)
	}
	cr, err := d.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, SandboxConfig: pod,
		Config: ctrConfig("app", ref, "sleep", "1")})
	if err != nil {
		t.Fatal(err)
	}
	id := cr.ContainerId
	if _, ctrs := relist(); ctrs[id] != runtimeapi.ContainerState_CONTAINER_CREATED {
		t.Fatalf("after CreateContainer: containers %v", ctrs)
	}
	// The container exits by itself a second after it starts.
	if _, err := d.RT.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if _, ctrs := relist(); ctrs[id] != runtimeapi.ContainerState_CONTAINER_RUNNING && ctrs[id] != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Fatalf("after StartContainer: containers %v", ctrs)
	}
	waitFor(t, time.Minute, "the exit to show in a relist", func() bool {
		_, ctrs := relist()
		return ctrs[id] == runtimeapi.ContainerState_CONTAINER_EXITED
	})
	// The status call, which reads the same records, agrees.
	st, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil || st.Status.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Fatalf("status after the relist saw the exit: %v, %v", st.GetStatus().GetState(), err)
	}
	if _, err := d.RT.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	if pods, _ := relist(); pods[podID] != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Fatalf("after StopPodSandbox: pods %v", pods)
	}
	removePod(t, d, podID)
	if pods, ctrs := relist(); len(pods) != 0 || len(ctrs) != 0 {
		t.Fatalf("after RemovePodSandbox: pods %v, containers %v", pods, ctrs)
	}
	assertPodGone(t, d, podID)
	assertDaemonClean(t, d)
}
