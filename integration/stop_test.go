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

// TestStopBeforeTrap: kubelet may stop a container in the first
// milliseconds of its life (a pod deleted as soon as it runs), before its
// shell has reached its `trap ... TERM` line. The kernel drops a signal
// sent to a pid namespace's init that has no handler for it, so the TERM
// would be lost and the container SIGKILLed at the end of its grace
// period (exit 137). The TERM reaches the trap once it is set: the
// container exits with the trap's code.
func TestStopBeforeTrap(t *testing.T) {
	d := StartDaemon(t)
	ref := busyboxRef(t)
	pull(t, d, ref)
	ctx := ctxT(t, 3*time.Minute)
	pod := podConfig("stop-early")
	// As kubelet runs a pod without shareProcessNamespace: each container
	// is the init of its own pid namespace (in the pod's, a TERM before
	// the trap kills the shell, as on any host).
	ownPid := &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER}
	pod.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: ownPid}
	podID := runPod(t, d, pod)
	ctr := func(name string, cmd ...string) *runtimeapi.ContainerConfig {
		c := ctrConfig(name, ref, cmd...)
		c.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: ownPid}
		return c
	}
	// The sleep before the trap stands for a shell's slow first lines.
	id := runContainer(t, d, podID, pod, ctr("early", "sh", "-c", `sleep 1; trap "exit 3" TERM; sleep 600 & wait`))
	if _, err := d.RT.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 60}); err != nil {
		t.Fatal(err)
	}
	st, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.Status.ExitCode != 3 {
		t.Fatalf("stopped before its trap: state %v, exit code %d, want exited with the trap's 3 (137: the TERM was lost)", st.Status.State, st.Status.ExitCode)
	}
	// A plain sleep as init never takes TERM: it is killed at the end of
	// its grace period, as before.
	plain := runContainer(t, d, podID, pod, ctr("plain", "sleep", "600"))
	if _, err := d.RT.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: plain, Timeout: 1}); err != nil {
		t.Fatal(err)
	}
	st, err = d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: plain})
	if err != nil || st.Status.ExitCode != 137 {
		t.Fatalf("plain sleep after a 1 s grace: exit %d, %v; want 137", st.GetStatus().GetExitCode(), err)
	}
	removePod(t, d, podID)
	assertPodGone(t, d, podID)
	assertDaemonClean(t, d)
}
