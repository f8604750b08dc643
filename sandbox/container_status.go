package sandbox

import (
	"context"
	"path/filepath"
	"time"

	"github.com/husk-runtime/husk/atomicfile"
	"github.com/husk-runtime/husk/shim"
)

// Exit reasons, as kubelet reads them.
const (
	ReasonCompleted = "Completed"
	ReasonError     = "Error"
	ReasonOOMKilled = "OOMKilled"
	ReasonShimDied  = "ShimDied"
)

// ContainerView is a consistent copy of a container record.
type ContainerView struct {
	Container
	Reason string
}

// Container returns the container with id (or unique prefix), from memory.
func (m *Manager) Container(ctx context.Context, id string) (ContainerView, error) {
	c, err := m.container(id)
	if err != nil {
		return ContainerView{}, err
	}
	return m.viewContainer(c), nil
}

// ListContainers returns every container that is fully created, from
// memory (watchExit keeps the states true).
func (m *Manager) ListContainers(ctx context.Context) []ContainerView {
	m.mu.RLock()
	cs := make([]*Container, 0, len(m.ctrs))
	for _, c := range m.ctrs {
		cs = append(cs, c)
	}
	m.mu.RUnlock()
	out := make([]ContainerView, 0, len(cs))
	for _, c := range cs {
		v := m.viewContainer(c)
		if v.State == ContainerCreating {
			continue
		}
		out = append(out, v)
	}
	return out
}

func (m *Manager) viewContainer(c *Container) ContainerView {
	m.mu.RLock()
	defer m.mu.RUnlock()
	v := ContainerView{Container: *c}
	if c.State == ContainerExited && c.Exit != nil {
		switch {
		// Signal -1 is how husk marked a shim's death in exit.json before
		// the record said so: records from then still read right.
		case c.ShimDied || c.Exit.Signal == -1:
			v.Reason = ReasonShimDied
		case c.Exit.OOMKilled:
			v.Reason = ReasonOOMKilled
		case c.Exit.Code == 0:
			v.Reason = ReasonCompleted
		default:
			v.Reason = ReasonError
		}
	}
	return v
}

// refreshContainer picks up an exit the shim recorded, reading its exit
// file. Only the calls that change a container use it, to act on its true
// state even if watchExit has not yet told; the list and status calls
// answer from memory.
func (m *Manager) refreshContainer(c *Container) {
	m.mu.RLock()
	st, podID := c.State, c.PodID
	m.mu.RUnlock()
	if st != ContainerRunning && st != ContainerCreated {
		return
	}
	var ex shim.ExitStatus
	if err := atomicfile.ReadJSON(filepath.Join(m.paths.ContainerDir(podID, c.ID), "exit.json"), &ex); err != nil {
		return
	}
	m.noteContainerExit(c, &ex)
}

// noteContainerExit records the exit of a container that ran, once: the
// first of watchExit and refreshContainer to know it wins.
func (m *Manager) noteContainerExit(c *Container, ex *shim.ExitStatus) {
	first := false
	_ = m.updateContainer(c, func() {
		if first = c.State == ContainerRunning || c.State == ContainerCreated; first {
			c.State, c.Exit = ContainerExited, ex
		}
	})
	if first {
		m.emitContainer(c, evStopped)
		m.tellStopped(c)
	}
}

// tellStopped tells the plugins a container stopped, in the background:
// the exit may be noticed under the pod's lock, and a plugin may take its
// request timeout to answer. The plugins hear of each stop once, so a
// StopContainer or RemoveContainer that gets there first wins.
func (m *Manager) tellStopped(c *Container) {
	p, err := m.pod(c.PodID)
	if err != nil {
		return
	}
	pv, cv := m.plugView(p, c)
	go m.plugins.StopContainer(context.Background(), pv, cv)
}

// markShimDead records that a container lost its shim: nothing can collect
// its exit any more. The exit file stands in for the one the shim would
// have written, and the record says why.
func (m *Manager) markShimDead(c *Container) {
	exit := &shim.ExitStatus{Code: 255, FinishedAt: time.Now().UTC()}
	_ = atomicfile.WriteJSON(filepath.Join(m.paths.ContainerDir(c.PodID, c.ID), "exit.json"), exit)
	_ = m.updateContainer(c, func() { c.State, c.ShimDied, c.Exit = ContainerExited, true, exit })
	m.emitContainer(c, evStopped)
	m.tellStopped(c)
}
