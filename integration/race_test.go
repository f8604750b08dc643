package integration

import (
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestLifecycleRaces races Stop, Remove, Status, Exec and List calls on one
// pod and its container, many times: they end as if run one after the
// other. Stop and Remove always succeed (losing to a Remove is success, as
// CRI has it); Status and Exec of a pod or container that is gone say
// NotFound, and Exec of a stopped one FailedPrecondition. Nothing is left.
func TestLifecycleRaces(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	pull(t, d, ref)
	ctx := ctxT(t, 5*time.Minute)
	const rounds = 15
	for round := range rounds {
		pod := podConfig("race")
		podID := runPod(t, d, pod)
		c := runContainer(t, d, podID, pod, ctrConfig("app", ref, "sleep", "3600"))
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		must := func(what string, err error) {
			if err != nil {
				errs <- status.Errorf(status.Code(err), "round %d: %s: %v", round, what, err)
			}
		}
		gone := func(what string, err error) {
			switch status.Code(err) {
			case codes.OK, codes.NotFound, codes.FailedPrecondition:
			default:
				errs <- status.Errorf(status.Code(err), "round %d: %s: %v", round, what, err)
			}
		}
		calls := []func(){
			func() {
				_, err := d.RT.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID})
				must("StopPodSandbox", err)
			},
			func() {
				_, err := d.RT.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID})
				must("StopPodSandbox", err)
			},
			func() {
				_, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID})
				must("RemovePodSandbox", err)
			},
			func() {
				_, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID})
				must("RemovePodSandbox", err)
			},
			func() {
				_, err := d.RT.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: c, Timeout: 1})
				must("StopContainer", err)
			},
			func() {
				_, err := d.RT.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c})
				must("RemoveContainer", err)
			},
			func() {
				_, err := d.RT.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: podID})
				gone("PodSandboxStatus", err)
			},
			func() {
				_, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c})
				gone("ContainerStatus", err)
			},
			func() {
				_, err := d.RT.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: c, Cmd: []string{"true"}, Timeout: 10})
				gone("ExecSync", err)
			},
			func() {
				_, err := d.RT.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{ContainerId: c,
					Linux: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20}})
				gone("UpdateContainerResources", err)
			},
			func() {
				_, err := d.RT.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
				must("ListContainers", err)
			},
			func() {
				_, err := d.RT.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
				must("ListPodSandbox", err)
			},
		}
		// A different order each round, so each pair meets both ways.
		for i := range calls {
			f := calls[(i+round)%len(calls)]
			wg.Add(1)
			go func() { defer wg.Done(); f() }()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		// Whatever won, a last Remove leaves nothing.
		if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
			t.Fatalf("round %d: final RemovePodSandbox: %v", round, err)
		}
		assertPodGone(t, d, podID)
		if t.Failed() {
			t.FailNow()
		}
	}
	assertDaemonClean(t, d)
	// No record written for a pod or container that was gone.
	for _, bad := range []string{".tmp-pod.json", ".tmp-container.json", "panic"} {
		if log := d.Log(); strings.Contains(log, bad) {
			t.Errorf("daemon log mentions %q:\n%s", bad, tail(log, 40))
		}
	}
}
