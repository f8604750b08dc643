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
	unlock, live := m.lockLive(p)
	defer unlock()
	if !live || !m.containerLive(c) {
		return fmt.Errorf("container %s was removed: %w", c.ID, ErrNotFound)
	}
	m.refreshContainer(c)
	if st := m.containerState(c); st != ContainerCreated {
		return fmt.Errorf("container %s is %s, only a created container can start: %w", c.ID, st, ErrFailedPrecondition)
	}
	if err := m.shim(p).Start(ctx, c.ID); err != nil {
		return fmt.Errorf("start container %s: %w", c.ID, notFoundIfMissingCommand(err))
	}
	err = m.updateContainer(c, func() { c.State = ContainerRunning; c.StartedAt = time.Now().UTC() })
	m.emitContainer(c, evStarted)
	m.watchExit(p, c.ID)
	return err
}

func (m *Manager) containerState(c *Container) ContainerState {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return c.State
}
