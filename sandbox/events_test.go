package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func eventManager() (*Manager, *Pod) {
	m := &Manager{log: slog.New(slog.DiscardHandler),
		pods: map[string]*Pod{}, ctrs: map[string]*Container{}, names: map[string]string{}}
	p := &Pod{ID: "pod1", State: PodReady, Config: &runtimeapi.PodSandboxConfig{}}
	m.pods[p.ID] = p
	return m, p
}

func drain(ch <-chan Event) []string {
	var out []string
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, ev.ID+":"+ev.Type.String())
		default:
			return out
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Each id goes created, started, stopped, deleted once, in order, however
// many paths report the same change and in whatever order they get there.
func TestEventOrder(t *testing.T) {
	m, p := eventManager()
	ch, _ := m.Subscribe(t.Context())
	m.emitPod(p, evCreated, evStarted)
	c := &Container{ID: "c1", PodID: p.ID, State: ContainerCreated, Config: &runtimeapi.ContainerConfig{}}
	m.ctrs[c.ID] = c
	m.emitContainer(c, evCreated)
	m.emitContainer(c, evCreated) // a retried create
	c.State, c.StartedAt = ContainerRunning, time.Now()
	c.State = ContainerExited
	m.emitContainer(c, evStopped) // the exit noticed before started went out
	m.emitContainer(c, evStarted) // late: dropped
	m.emitContainer(c, evStopped) // a second path noticing the exit
	// c2 is created, then removed: stopped is filled in before deleted.
	c2 := &Container{ID: "c2", PodID: p.ID, State: ContainerCreated, Config: &runtimeapi.ContainerConfig{}}
	m.ctrs[c2.ID] = c2
	m.emitContainer(c2, evCreated)
	delete(m.ctrs, c2.ID)
	m.emitContainer(c2, evStopped) // late, record gone before it got there
	m.emitContainer(c2, evDeleted)
	m.emitContainer(c2, evStopped) // later still
	delete(m.ctrs, c.ID)
	m.emitContainer(c, evDeleted)
	m.emitPod(p, evStopped)
	m.emitPod(p, evStopped)
	delete(m.pods, p.ID)
	m.emitPod(p, evDeleted)
	got := drain(ch)
	want := []string{
		"pod1:CONTAINER_CREATED_EVENT", "pod1:CONTAINER_STARTED_EVENT",
		"c1:CONTAINER_CREATED_EVENT", "c1:CONTAINER_STARTED_EVENT", "c1:CONTAINER_STOPPED_EVENT",
		"c2:CONTAINER_CREATED_EVENT", "c2:CONTAINER_STOPPED_EVENT", "c2:CONTAINER_DELETED_EVENT",
		"c1:CONTAINER_DELETED_EVENT",
		"pod1:CONTAINER_STOPPED_EVENT", "pod1:CONTAINER_DELETED_EVENT",
	}
	if !equal(got, want) {
		t.Fatalf("events:\n got %q\nwant %q", got, want)
	}
	if len(m.ev.last) != 0 {
		t.Errorf("ids still tracked after deletion: %v", m.ev.last)
	}
}

// A record recovered after a restart has no history here: its later events
// still go out.
func TestEventRecovered(t *testing.T) {
	m, p := eventManager()
	ch, _ := m.Subscribe(t.Context())
	c := &Container{ID: "c1", PodID: p.ID, State: ContainerExited, Config: &runtimeapi.ContainerConfig{}}
	m.ctrs[c.ID] = c
	m.emitContainer(c, evStopped)
	got := drain(ch)
	if !equal(got, []string{"c1:CONTAINER_STOPPED_EVENT"}) {
		t.Fatalf("events: %q", got)
	}
}

// Events carry the pod and its containers as they were then.
func TestEventSnapshot(t *testing.T) {
	m, p := eventManager()
	ch, _ := m.Subscribe(t.Context())
	c := &Container{ID: "c1", PodID: p.ID, State: ContainerCreated, Config: &runtimeapi.ContainerConfig{}}
	half := &Container{ID: "c2", PodID: p.ID, State: ContainerCreating, Config: &runtimeapi.ContainerConfig{}}
	m.ctrs[c.ID], m.ctrs[half.ID] = c, half
	m.emitContainer(c, evCreated)
	ev := <-ch
	if ev.Pod.ID != p.ID || !ev.Pod.Ready || len(ev.Containers) != 1 || ev.Containers[0].ID != c.ID || ev.CreatedAt.IsZero() {
		t.Fatalf("event: %+v", ev)
	}
}

// A subscriber that stops reading is dropped, with an error saying so; the
// runtime never waits for it, and others go on receiving.
func TestEventSlowSubscriber(t *testing.T) {
	m, p := eventManager()
	slow, why := m.Subscribe(t.Context())
	ctx, cancel := context.WithCancel(t.Context())
	fast, fastWhy := m.Subscribe(ctx)
	n := 0
	for i := range EventBuffer + 10 {
		c := &Container{ID: fmt.Sprint("c", i), PodID: p.ID, Config: &runtimeapi.ContainerConfig{}}
		m.ctrs[c.ID] = c
		m.emitContainer(c, evCreated)
		n += len(drain(fast))
	}
	cnt := 0
	for range slow {
		cnt++
	}
	if cnt != EventBuffer || !errors.Is(why(), ErrSlowSubscriber) {
		t.Fatalf("slow subscriber got %d events and error %v; want %d and ErrSlowSubscriber", cnt, why(), EventBuffer)
	}
	cancel()
	if _, open := <-fast; open {
		t.Fatal("subscription still open after its context ended")
	}
	if n != EventBuffer+10 || !errors.Is(fastWhy(), context.Canceled) {
		t.Fatalf("reading subscriber got %d events, error %v", n, fastWhy())
	}
	if len(m.ev.subs) != 0 {
		t.Fatalf("%d subscribers left", len(m.ev.subs))
	}
}
