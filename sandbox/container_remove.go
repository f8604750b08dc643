package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/husk-runtime/husk/image"
)

// RemoveContainer removes a container, stopping it first if it runs. CRI:
// removing an unknown container succeeds.
func (m *Manager) RemoveContainer(ctx context.Context, id string) error {
	c, p, err := m.containerAndPod(id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer m.plugins.BlockSync()()
	unlock, live := m.lockLive(p)
	defer unlock()
	if !live || !m.containerLive(c) {
		return nil // removed meanwhile, with its pod or on its own
	}
	return m.removeContainer(ctx, p, c)
}

func (m *Manager) removeContainer(ctx context.Context, p *Pod, c *Container) error {
	if err := m.stopContainer(ctx, c, 0); err != nil {
		return err
	}
	if err := m.removeContainerFiles(ctx, p, c.ID); err != nil {
		return err
	}
	m.set(func() {
		delete(m.ctrs, c.ID)
		delete(m.names, containerKey(p.ID, c.Config.GetMetadata()))
	})
	pv, cv := m.plugView(p, c)
	m.plugins.RemoveContainer(ctx, pv, cv)
	m.emitContainer(c, evDeleted)
	// An image removed while this container used it kept its layers for
	// it (image.Store.SetInUse); they can go now.
	if _, err := m.images.Resolve(c.ImageID); errors.Is(err, image.ErrNotFound) {
		if err := m.images.Collect(); err != nil {
			m.log.Warn("image garbage collection after container removal", "container", c.ID, "error", err)
		}
	}
	return nil
}

// removeContainerFiles deletes what the runtime holds of container id and
// then its dir (mounts, record, spec). Every step tolerates an earlier,
// interrupted removal.
func (m *Manager) removeContainerFiles(ctx context.Context, p *Pod, id string) error {
	if err := m.deleteInShim(ctx, p, id); err != nil {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	dir := m.paths.ContainerDir(p.ID, id)
	if err := m.unmountImageVolumes(dir); err != nil {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	if err := m.images.Unmount(dir); err != nil {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	return nil
}
