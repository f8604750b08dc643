package podrun

// Startup and readiness probes and lifecycle hooks against the fake CRI
// (podrun_test.go), on the supervisor's stepped clock.

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func execProbe(cmd string, period, failures, successes int32) *corev1.Probe {
	return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{cmd}}},
		PeriodSeconds: period, FailureThreshold: failures, SuccessThreshold: successes}
}

// Nothing but the startup probe runs until it succeeds; then readiness
// needs SuccessThreshold successes in a row and is lost after
// FailureThreshold failures; status.json follows, for husk ps.
func TestStartupThenReadiness(t *testing.T) {
	f := newFake()
	f.execExits = map[string]int32{"started": 1, "ready": 0, "alive": 0}
	pod := testPod(corev1.RestartPolicyAlways, "app")
	c := &pod.Spec.Containers[0]
	c.StartupProbe = execProbe("started", 1, 30, 1)
	c.ReadinessProbe = execProbe("ready", 1, 2, 2)
	c.LivenessProbe = execProbe("alive", 1, 3, 1)
	r, p, s, states := supervise(t, f, pod)
	status := func() ContainerProbing {
		t.Helper()
		ps, err := ReadProbeStatus(r.StateDir, p.Plan.UID)
		if err != nil || ps == nil {
			t.Fatalf("status: %v, %v", ps, err)
		}
		cp, ok := ps.Lookup("app", p.ids["app"])
		if !ok {
			t.Fatalf("status %+v has no app of %s", ps, p.ids["app"])
		}
		return cp
	}
	step := func() ContainerProbing {
		t.Helper()
		f.advance(time.Second)
		if _, err := s.step(context.Background(), states); err != nil {
			t.Fatal(err)
		}
		return status()
	}
	s.writeStatus(states)
	for range 3 {
		if cp := step(); cp.Started || cp.Ready {
			t.Fatalf("started or ready before the startup probe passed: %+v", cp)
		}
	}
	if got := f.calls("exec"); len(got) != 3 || !strings.HasSuffix(got[2], " started") {
		t.Fatalf("probes before startup passed: %q, want the startup probe only", got)
	}
	f.execExits["started"] = 0
	if cp := step(); !cp.Started || cp.Ready {
		t.Fatalf("after the startup probe passed: %+v, want started, not ready (2 successes needed)", cp)
	}
	if cp := step(); !cp.Ready {
		t.Fatalf("not ready after 2 readiness successes: %+v", cp)
	}
	f.execExits["ready"] = 1
	if cp := step(); !cp.Ready {
		t.Fatalf("not ready after 1 readiness failure of 2: %+v", cp)
	}
	if cp := step(); cp.Ready || !cp.Started {
		t.Fatalf("still ready after 2 readiness failures: %+v", cp)
	}
	if n := len(f.calls("stop")); n != 0 {
		t.Errorf("a readiness failure stopped the container")
	}
	f.exit("app", 0)
	if cp := step(); cp.Started || cp.Ready {
		t.Errorf("an exited container is still started or ready: %+v", cp)
	}
}

// A startup probe that fails FailureThreshold times kills the container.
func TestStartupProbeKills(t *testing.T) {
	f := newFake()
	f.execExit = 1
	pod := testPod(corev1.RestartPolicyAlways, "app")
	pod.Spec.Containers[0].StartupProbe = execProbe("started", 1, 2, 1)
	_, _, s, states := supervise(t, f, pod)
	for range 2 {
		f.advance(time.Second)
		if _, err := s.step(context.Background(), states); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return len(f.calls("stop")) == 1 }, "stop after 2 startup failures")
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// preStop runs before the container is stopped, whoever stops it (here
// StopPod, as `husk pod rm` does, reading the hook from the annotation);
// postStart right after the start, and a failing one kills the container.
func TestHooks(t *testing.T) {
	f := newFake()
	f.execExits = map[string]int32{"fail-post": 1}
	pod := testPod(corev1.RestartPolicyAlways, "app", "bad")
	pod.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{
		PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"post"}}},
		PreStop:   &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"pre"}}},
	}
	pod.Spec.Containers[1].Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"fail-post"}}}}
	r, _, err := start(t, f, pod)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range f.log {
		if !strings.HasPrefix(c, "create") && !strings.HasPrefix(c, "remove") {
			got = append(got, c)
		}
	}
	want := []string{"start app-0", "exec app-0 post", "start bad-0", "exec bad-0 fail-post", "stop bad-0"}
	if !slices.Equal(got, want) {
		t.Fatalf("calls %q, want %q", got, want)
	}
	if err := r.StopPod(context.Background(), "pod1", 5); err != nil {
		t.Fatal(err)
	}
	got = f.log[len(f.log)-2:]
	if want := []string{"exec app-0 pre", "stop app-0"}; !slices.Equal(got, want) {
		t.Errorf("StopPod: %q, want %q", got, want)
	}
}

// Past activeDeadlineSeconds every container is stopped and none
// restarts, whatever the restart policy; the pod has failed with
// DeadlineExceeded.
func TestActiveDeadline(t *testing.T) {
	f := newFake()
	pod := testPod(corev1.RestartPolicyAlways, "app")
	deadline := int64(30)
	pod.Spec.ActiveDeadlineSeconds = &deadline
	_, p, s, states := supervise(t, f, pod)
	p.began = f.now()
	step := func(d time.Duration) bool {
		t.Helper()
		f.advance(d)
		done, err := s.step(context.Background(), states)
		if err != nil {
			t.Fatal(err)
		}
		return done
	}
	if step(29 * time.Second) {
		t.Fatal("done before the deadline")
	}
	if n := len(f.calls("stop")); n != 0 {
		t.Fatalf("stopped before the deadline")
	}
	step(time.Second)
	waitFor(t, func() bool { return len(f.calls("stop")) == 1 }, "stop at the deadline")
	step(time.Minute) // sees the exit
	if !step(time.Second) || !states[0].done {
		t.Fatal("not done after the deadline stopped the container")
	}
	if n := len(f.calls("start")); n != 1 {
		t.Errorf("%d starts: restarted after the deadline", n)
	}
}
