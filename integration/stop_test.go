package integration

import (
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestStopContainersInParallel: kubelet stops a pod's containers in
// parallel, each call with the pod's grace period. While one container
// outlives SIGTERM in its grace period, another container of the same pod
// stops at once: the grace period is not spent holding the pod.
func TestStopContainersInParallel(t *testing.T) {
	d := StartDaemon(t)
	ref := busyboxRef(t)
	pull(t, d, ref)
	ctx := ctxT(t, 3*time.Minute)
	pod := podConfig("stop")
	podID := runPod(t, d, pod)
	// a notes SIGTERM and goes on; b is a plain sleep.
	a := runContainer(t, d, podID, pod, ctrConfig("a", ref, "sh", "-c", `trap "echo term > /tmp/term" TERM; while true; do sleep 1; done`))
	b := runContainer(t, d, podID, pod, ctrConfig("b", ref, "sleep", "3600"))

	aDone := make(chan error, 1)
	go func() {
		_, err := d.RT.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: a, Timeout: 600})
		aDone <- err
	}()
	waitFor(t, time.Minute, "a to get SIGTERM", func() bool {
		ex, err := d.RT.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: a, Cmd: []string{"cat", "/tmp/term"}, Timeout: 10})
		return err == nil && strings.TrimSpace(string(ex.Stdout)) == "term"
	})
	if _, err := d.RT.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: b, Timeout: 0}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-aDone:
		t.Fatalf("a's stop ended (%v) before b's, within a 600 s grace period that a outlives", err)
	default:
	}
	st, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: b})
	if err != nil || st.Status.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Fatalf("b after its stop: %v, %v", st.GetStatus().GetState(), err)
	}
	// A second stop with no grace kills a; the first call then returns.
	if _, err := d.RT.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: a, Timeout: 0}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-aDone:
		if err != nil {
			t.Fatalf("a's first stop: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a's first stop did not return after a was killed")
	}
	if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, d, podID)
	assertDaemonClean(t, d)
}
