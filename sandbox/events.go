package sandbox

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Lifecycle events, as CRI's GetContainerEvents names them. Their values
// are in lifecycle order, which emit relies on.
const (
	evCreated = runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT
	evStarted = runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT
	evStopped = runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT
	evDeleted = runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT
)

// EventBuffer is how many events a subscriber may fall behind before it is
// dropped.
const EventBuffer = 1024

// ErrSlowSubscriber ends a subscription that fell EventBuffer events behind:
// the runtime never waits for a reader. The reader has missed events and
// must resubscribe and relist (kubelet's evented PLEG does both: it restarts
// the stream and relists on error).
var ErrSlowSubscriber = errors.New("event subscriber fell behind; events were dropped, resubscribe and relist")

// Event is one lifecycle change of a container or of a sandbox (then ID is
// the pod id, as containerd reports its sandbox container), with the pod and
// its containers as they were at that moment.
type Event struct {
	Type       runtimeapi.ContainerEventType
	ID         string // container id, or the pod id for a sandbox event
	CreatedAt  time.Time
	Pod        PodView
	Containers []ContainerView // the pod's containers, created ones only
}

// eventHub fans events out to subscribers. Its zero value is ready.
type eventHub struct {
	mu   sync.Mutex // held while an event is built and handed out: one order for all
	subs map[*subscriber]struct{}
	// last is the last event emitted per live id: each id goes created,
	// started, stopped, deleted, each at most once and in that order,
	// whichever of the paths that notice a change gets there first.
	last map[string]runtimeapi.ContainerEventType
}

type subscriber struct {
	ch  chan Event
	err error // why ch was closed
}

// Subscribe returns every event from now on, in the order they happened,
// until ctx ends or the subscriber falls EventBuffer events behind. Then the
// channel is closed and the returned func tells why: ctx's error, or
// ErrSlowSubscriber.
func (m *Manager) Subscribe(ctx context.Context) (<-chan Event, func() error) {
	h := &m.ev
	s := &subscriber{ch: make(chan Event, EventBuffer)}
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[*subscriber]struct{}{}
	}
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	context.AfterFunc(ctx, func() { h.drop(s, ctx.Err()) })
	return s.ch, func() error {
		h.mu.Lock()
		defer h.mu.Unlock()
		return s.err
	}
}

// drop ends a subscription; dropping twice is harmless.
func (h *eventHub) drop(s *subscriber, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropLocked(s, err)
}

func (h *eventHub) dropLocked(s *subscriber, err error) {
	if _, ok := h.subs[s]; !ok {
		return
	}
	delete(h.subs, s)
	s.err = err
	close(s.ch)
}

// emitContainer reports a change of container c.
func (m *Manager) emitContainer(c *Container, t runtimeapi.ContainerEventType) {
	m.mu.RLock()
	p, known := m.pods[c.PodID], m.ctrs[c.ID] == c
	started := !c.StartedAt.IsZero()
	m.mu.RUnlock()
	if t == evStopped || t == evDeleted {
		m.forgetStats("c/" + c.ID)
	}
	m.emit(t, c.ID, p, known, started)
}

// emitPod reports changes of pod p's sandbox, in the order given.
func (m *Manager) emitPod(p *Pod, types ...runtimeapi.ContainerEventType) {
	m.mu.RLock()
	known := m.pods[p.ID] == p
	m.mu.RUnlock()
	for _, t := range types {
		if t == evStopped || t == evDeleted {
			m.forgetStats("p/" + p.ID)
		}
		m.emit(t, p.ID, p, known, true)
	}
}

// emit sends event t of id to every subscriber, unless id has had it (or
// a later one) already: several paths may notice the same exit (the exit
// watcher, a status read, StopContainer), and only the first reports it.
// known says the record is still in the index; a late event for a record
// already removed is dropped. A gap is filled: a container seen stopping
// before its started event went out reports started first, and one deleted
// without a stopped event reports stopped first, so every reader sees the
// lifecycle in order. Callers hold no manager lock.
func (m *Manager) emit(t runtimeapi.ContainerEventType, id string, p *Pod, known, started bool) {
	h := &m.ev
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last == nil {
		h.last = map[string]runtimeapi.ContainerEventType{}
	}
	last, seen := h.last[id]
	switch {
	case seen && t <= last:
		return // reported already
	case !seen && t != evCreated && t != evDeleted && !known:
		return // late: the record is gone, its deleted event went out
	}
	var todo []runtimeapi.ContainerEventType
	if seen && t == evStopped && last == evCreated && started {
		todo = append(todo, evStarted)
	}
	if seen && t == evDeleted && last < evStopped {
		todo = append(todo, evStopped)
	}
	todo = append(todo, t)
	if t == evDeleted {
		delete(h.last, id)
	} else {
		h.last[id] = t
	}
	if len(h.subs) == 0 || p == nil {
		return
	}
	pod, ctrs := m.snapshot(p)
	for _, typ := range todo {
		ev := Event{Type: typ, ID: id, CreatedAt: time.Now().UTC(), Pod: pod, Containers: ctrs}
		for s := range h.subs {
			select {
			case s.ch <- ev:
			default:
				h.dropLocked(s, ErrSlowSubscriber)
				m.log.Warn("dropping a container event subscriber that fell behind", "buffer", EventBuffer)
			}
		}
	}
}

// snapshot is pod p and its containers as they are now. It reads records
// only: refreshing them here could emit from within emit.
func (m *Manager) snapshot(p *Pod) (PodView, []ContainerView) {
	pod := m.viewPod(p)
	var ctrs []ContainerView
	for _, c := range m.podContainers(p.ID) {
		if v := m.viewContainer(c); v.State != ContainerCreating {
			ctrs = append(ctrs, v)
		}
	}
	return pod, ctrs
}

// watchExit notices the exit of id (a container, or the pod's infra when id
// is the pod id) as it happens. It is what keeps the index true: the list
// and status calls answer from memory and read no exit file, so kubelet's
// relist of every container each second costs no I/O. It holds one shim
// Wait without a timeout: one goroutine and one idle unix connection here,
// one goroutine in the shim. The exit the Wait returns is the one the shim
// wrote to the exit file before answering, and it is recorded with the
// container's record.
//
// A Wait that fails while the container still runs in the record and the
// shim lives (a dial refused for want of file descriptors, say) is tried
// again, backing off up to 5 s, so an exit is never missed for good. The
// shim's death ends the watch: watchShim records the containers exited.
func (m *Manager) watchExit(p *Pod, id string) {
	client := m.shim(p)
	go func() {
		for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
			ex, done, err := client.Wait(context.Background(), id, 0)
			if err == nil && done && ex != nil {
				if id == p.ID {
					m.noteInfraExit(p, ex)
				} else if c, cerr := m.container(id); cerr == nil && c.PodID == p.ID {
					m.noteContainerExit(c, ex)
				}
				return
			}
			if !m.stillWatched(p, id) {
				return
			}
			m.log.Warn("waiting for an exit failed; trying again", "pod", p.ID, "id", id, "error", err, "retry_in", backoff)
			time.Sleep(backoff)
		}
	}()
}

// stillWatched says whether an exit of id is still to be noticed: its pod
// is known with its shim alive, and id (the infra or a container) runs.
func (m *Manager) stillWatched(p *Pod, id string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if _, known := m.pods[p.ID]; !known || p.shimStopping || p.State != PodReady && id == p.ID {
		return false
	}
	if p.ShimPid > 0 && unix.Kill(p.ShimPid, 0) != nil {
		return false
	}
	if id == p.ID {
		return p.infraExit == nil
	}
	c, ok := m.ctrs[id]
	return ok && (c.State == ContainerRunning || c.State == ContainerCreated)
}

// watchExits arms watchExit for a recovered pod: its infra while it is
// ready and each running container.
func (m *Manager) watchExits(p *Pod) {
	if m.viewPod(p).Ready {
		m.watchExit(p, p.ID)
	}
	for _, c := range m.podContainers(p.ID) {
		if m.containerState(c) == ContainerRunning {
			m.watchExit(p, c.ID)
		}
	}
}
