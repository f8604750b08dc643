package sandbox

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// UpdateContainerResources changes a running container's limits (kubelet's
// in-place resize) and records them, so ContainerStatus reports what is in
// force.
func (m *Manager) UpdateContainerResources(ctx context.Context, id string, res *runtimeapi.LinuxContainerResources) error {
	if res == nil {
		return fmt.Errorf("update of container %s: no linux resources given: %w", id, ErrInvalid)
	}
	defer m.plugins.BlockSync()()
	return m.updateResources(ctx, id, res, true)
}

// ApplyPluginResources is UpdateContainerResources asked by an NRI plugin
// itself: the plugins are not told (it runs within a plugin's
// synchronization, which BlockSync would wait for).
func (m *Manager) ApplyPluginResources(ctx context.Context, id string, res *runtimeapi.LinuxContainerResources) error {
	return m.updateResources(ctx, id, res, false)
}

func (m *Manager) updateResources(ctx context.Context, id string, res *runtimeapi.LinuxContainerResources, tell bool) error {
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
	if st := m.containerState(c); st != ContainerRunning && st != ContainerCreated {
		return fmt.Errorf("container %s is %s: %w", c.ID, st, ErrFailedPrecondition)
	}
	if tell {
		pv, cv := m.plugView(p, c)
		if res, err = m.plugins.UpdateContainer(ctx, pv, cv, res); err != nil {
			return fmt.Errorf("update of container %s: NRI: %w", c.ID, err)
		}
	}
	r := resources(res)
	m.fitResources(r)
	if err := m.shim(p).Update(ctx, c.ID, r); err != nil {
		return fmt.Errorf("update of container %s: %w", c.ID, shimRefusal(err))
	}
	m.set(func() {
		cfg := proto.Clone(c.Config).(*runtimeapi.ContainerConfig)
		if cfg.Linux == nil {
			cfg.Linux = &runtimeapi.LinuxContainerConfig{}
		}
		cfg.Linux.Resources = res
		c.Config = cfg
	})
	if err := m.saveContainer(c); err != nil {
		return err
	}
	if tell {
		pv, cv := m.plugView(p, c)
		m.plugins.PostUpdateContainer(ctx, pv, cv)
	}
	return nil
}

// ReopenContainerLog makes the shim write the container's log to a new
// file at its path (kubelet rotated the old one away). CRI: only for a
// running container.
func (m *Manager) ReopenContainerLog(ctx context.Context, id string) error {
	c, p, err := m.runningContainer(id)
	if err != nil {
		return err
	}
	if c.LogPath == "" {
		return fmt.Errorf("container %s has no log path: %w", c.ID, ErrFailedPrecondition)
	}
	if err := m.shim(p).ReopenLog(ctx, c.ID); err != nil {
		return fmt.Errorf("reopen log of container %s: %w", c.ID, err)
	}
	return nil
}
