package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// eventLog collects a GetContainerEvents stream.
type eventLog struct {
	mu     sync.Mutex
	events []*runtimeapi.ContainerEventResponse
	err    error
	done   chan struct{}
}

// subscribe opens GetContainerEvents and returns once the daemon has
// subscribed (it sends the headers then), so no later event is missed.
func subscribe(t *testing.T, d *Daemon) (*eventLog, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := d.RT.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatalf("GetContainerEvents: %v", err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatalf("GetContainerEvents headers: %v", err)
	}
	l := &eventLog{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			ev, err := stream.Recv()
			l.mu.Lock()
			if err != nil {
				l.err = err
				l.mu.Unlock()
				return
			}
			l.events = append(l.events, ev)
			l.mu.Unlock()
		}
	}()
	return l, cancel
}

func (l *eventLog) snapshot() []*runtimeapi.ContainerEventResponse {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*runtimeapi.ContainerEventResponse(nil), l.events...)
}

// find returns the first event of type typ for id.
func (l *eventLog) find(id string, typ runtimeapi.ContainerEventType) *runtimeapi.ContainerEventResponse {
	for _, ev := range l.snapshot() {
		if ev.ContainerId == id && ev.ContainerEventType == typ {
			return ev
		}
	}
	return nil
}

// waitEvent waits for event typ of id, reading nothing else of the daemon:
// the exit watcher must notice exits on its own.
func (l *eventLog) waitEvent(t *testing.T, id string, typ runtimeapi.ContainerEventType, timeout time.Duration) *runtimeapi.ContainerEventResponse {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if ev := l.find(id, typ); ev != nil {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %v for %.12s within %v; events: %v", typ, id, timeout, l.sequences())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sequences is each id's event types in stream order.
func (l *eventLog) sequences() map[string][]string {
	out := map[string][]string{}
	for _, ev := range l.snapshot() {
		out[ev.ContainerId] = append(out[ev.ContainerId], strings.TrimSuffix(strings.TrimPrefix(ev.ContainerEventType.String(), "CONTAINER_"), "_EVENT"))
	}
	return out
}

func ctrIn(ev *runtimeapi.ContainerEventResponse, id string) *runtimeapi.ContainerStatus {
	for _, c := range ev.ContainersStatuses {
		if c.Id == id {
			return c
		}
	}
	return nil
}

// TestContainerEvents runs a pod with a container that exits by itself, one
// that is stopped and one never started, removes it all, and checks that
// GetContainerEvents reported each container and the sandbox created,
// started, stopped and deleted, once each and in order, with the pod's
// sandbox status and container statuses as they were at each event. The
// exit is reported without anyone reading a status.
func TestContainerEvents(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	pull(t, d, ref)
	ctx := ctxT(t, 3*time.Minute)
	l, cancel := subscribe(t, d)

	pod := podConfig("events")
	podID := runPod(t, d, pod)
	exiter := runContainer(t, d, podID, pod, ctrConfig("exiter", ref, "sh", "-c", "sleep 1; exit 3"))
	stopped := runContainer(t, d, podID, pod, ctrConfig("stopped", ref, "sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"))
	cr, err := d.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: ctrConfig("idle", ref, "true"), SandboxConfig: pod})
	if err != nil {
		t.Fatalf("CreateContainer idle: %v", err)
	}
	idle := cr.ContainerId

	// The exit is noticed by the watcher, not by a status read.
	start := time.Now()
	ev := l.waitEvent(t, exiter, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, 10*time.Second)
	st := ctrIn(ev, exiter)
	if st == nil || st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 3 || st.Reason != "Error" || st.FinishedAt == 0 {
		t.Fatalf("exiter's status in its stopped event: %v", st)
	}
	if lag := time.Since(time.Unix(0, st.FinishedAt)); lag > 2*time.Second {
		t.Errorf("stopped event %v after the exit", lag)
	}
	t.Logf("exiter's stopped event arrived %v after the container was seen exiting (%v after waiting began)", time.Unix(0, ev.CreatedAt).Sub(time.Unix(0, st.FinishedAt)), time.Since(start))

	if _, err := d.RT.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: stopped, Timeout: 10}); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	ev = l.waitEvent(t, stopped, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, 5*time.Second)
	if st := ctrIn(ev, stopped); st == nil || st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 0 {
		t.Fatalf("stopped's status in its stopped event: %v", st)
	}
	if _, err := d.RT.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: exiter}); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
	if _, err := d.RT.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	l.waitEvent(t, podID, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT, 5*time.Second)
	time.Sleep(200 * time.Millisecond) // anything late or doubled would show now

	full := []string{"CREATED", "STARTED", "STOPPED", "DELETED"}
	want := map[string][]string{
		podID: full, exiter: full, stopped: full,
		idle: {"CREATED", "STOPPED", "DELETED"}, // killed unstarted at removal: it is reported exited
	}
	got := l.sequences()
	for id, w := range want {
		if fmt.Sprint(got[id]) != fmt.Sprint(w) {
			t.Errorf("events of %.12s: %v, want %v", id, got[id], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("events for %d ids, want %d: %v", len(got), len(want), got)
	}

	// Every event carries the sandbox status and the pod's container
	// statuses as they were then.
	var last int64
	for _, ev := range l.snapshot() {
		ps := ev.PodSandboxStatus
		if ps.GetId() != podID || ps.GetMetadata().GetUid() != pod.Metadata.Uid || ev.CreatedAt < last {
			t.Errorf("event %v %.12s: sandbox %v, created_at %d after %d", ev.ContainerEventType, ev.ContainerId, ps, ev.CreatedAt, last)
		}
		last = ev.CreatedAt
		if ev.ContainerId == podID {
			wantReady := ev.ContainerEventType <= runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT
			if (ps.State == runtimeapi.PodSandboxState_SANDBOX_READY) != wantReady {
				t.Errorf("sandbox %v event: state %v", ev.ContainerEventType, ps.State)
			}
			continue
		}
		st := ctrIn(ev, ev.ContainerId)
		wantState := map[runtimeapi.ContainerEventType]runtimeapi.ContainerState{
			runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT: runtimeapi.ContainerState_CONTAINER_CREATED,
			runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT: runtimeapi.ContainerState_CONTAINER_RUNNING,
			runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT: runtimeapi.ContainerState_CONTAINER_EXITED,
		}
		switch {
		case ev.ContainerEventType == runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT:
			if st != nil {
				t.Errorf("deleted event of %.12s still lists it: %v", ev.ContainerId, st)
			}
		case st == nil:
			t.Errorf("%v event of %.12s does not list it among %d statuses", ev.ContainerEventType, ev.ContainerId, len(ev.ContainersStatuses))
		case st.State != wantState[ev.ContainerEventType] || st.Metadata.GetName() == "" || st.ImageRef == "":
			t.Errorf("%v event of %.12s: status %v", ev.ContainerEventType, ev.ContainerId, st)
		}
	}

	cancel()
	<-l.done
	assertPodGone(t, d, podID)
	assertDaemonClean(t, d)
}

// TestContainerEventsAfterRestart checks that a daemon restarted while a
// container runs watches it again: its exit is reported as it happens.
func TestContainerEventsAfterRestart(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	pull(t, d, ref)
	ctx := ctxT(t, 2*time.Minute)
	pod := podConfig("events-restart")
	podID := runPod(t, d, pod)
	short := runContainer(t, d, podID, pod, ctrConfig("short", ref, "sh", "-c", "sleep 4; exit 5"))

	d.Kill()
	d.Start()
	l, cancel := subscribe(t, d)
	ev := l.waitEvent(t, short, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, 15*time.Second)
	if st := ctrIn(ev, short); st == nil || st.ExitCode != 5 {
		t.Fatalf("status in the stopped event: %v", st)
	}
	if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	l.waitEvent(t, podID, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT, 5*time.Second)
	got := l.sequences()
	if fmt.Sprint(got[short]) != "[STOPPED DELETED]" || fmt.Sprint(got[podID]) != "[STOPPED DELETED]" {
		t.Errorf("events after restart: %v", got)
	}
	cancel()
	<-l.done
	assertPodGone(t, d, podID)
	assertDaemonClean(t, d)
}
