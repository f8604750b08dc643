package sandbox

import (
	"context"
	"fmt"
	"time"
)

// StartContainer starts a created container.
func (m *Manager) StartContainer(ctx context.Context, id string) error {
	c, p, err := m.containerAndPod(id)
	if err != nil {
		return err
	}
	defer m.plugins.BlockSync()()
	unlock, live := m.lockLive(p)
	defer unlock()
	if !live || !m.containerLive(c) {
		return fmt.Errorf("container %s was removed: %w", c.ID, ErrNotFound)
	}
	m.refreshContainer(c)
	if st := m.containerState(c); st != ContainerCreated {
		return fmt.Errorf("container %s is %s, only a created container can start: %w", c.ID, st, ErrFailedPrecondition)
	}
	pv, cv := m.plugView(p, c)
	if err := m.plugins.StartContainer(ctx, pv, cv); err != nil {
		return fmt.Errorf("start container %s: NRI: %w", c.ID, err)
	}
	if err := m.shim(p).Start(ctx, c.ID); err != nil {
		return fmt.Errorf("start container %s: %w", c.ID, notFoundIfMissingCommand(err))
	}
	first := m.firstStart(p, c)
	err = m.updateContainer(c, func() { c.State = ContainerRunning; c.StartedAt = time.Now().UTC() })
	if first {
		m.rec.PodStarted(time.Since(p.CreatedAt))
	}
	m.emitContainer(c, evStarted)
	m.watchExit(p, c.ID)
	pv, cv = m.plugView(p, c)
	m.plugins.PostStartContainer(ctx, pv, cv)
	return err
}

// firstStart says whether c is the first of its pod's containers to
// start, from the records (a start time survives a restart; a container
// removed before is not seen): the pod start latency is taken there.
func (m *Manager) firstStart(p *Pod, c *Container) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, o := range m.ctrs {
		if o.PodID == p.ID && o != c && !o.StartedAt.IsZero() {
			return false
		}
	}
	return true
}

func (m *Manager) containerState(c *Container) ContainerState {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return c.State
}
