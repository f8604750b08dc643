package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/husk-runtime/husk/mount"
	"github.com/husk-runtime/husk/shim"
)

// RemovePodSandbox removes everything the pod had. CRI: running containers
// are forcibly stopped and removed first, and removing an unknown sandbox
// succeeds.
func (m *Manager) RemovePodSandbox(ctx context.Context, id string) error {
	p, err := m.pod(id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer m.plugins.BlockSync()()
	unlock, live := m.lockLive(p)
	defer unlock()
	if !live {
		return nil // another RemovePodSandbox did it meanwhile
	}
	if p.State != PodNotReady {
		if err := m.stopPod(ctx, p); err != nil {
			return err
		}
	}
	return m.removePod(ctx, p)
}

// removePod deletes a stopped (or half-made, or recovered) pod. Each step
// tolerates what an earlier, interrupted removal already did.
func (m *Manager) removePod(ctx context.Context, p *Pod) error {
	for _, c := range m.podContainers(p.ID) {
		if err := m.removeContainer(ctx, p, c); err != nil {
			return fmt.Errorf("remove pod %s: %w", p.ID, err)
		}
	}
	// What the shim still holds beyond the infra no record names: the
	// daemon was killed between the shim's create and the record's write.
	// It goes with the pod (its libcontainer state too).
	if cs, err := m.shim(p).State(ctx); err == nil {
		for _, c := range cs {
			if c.ID != p.ID {
				if err := m.deleteInShim(ctx, p, c.ID); err != nil {
					return fmt.Errorf("remove pod %s: container %s without a record: %w", p.ID, c.ID, err)
				}
			}
		}
	}
	// What a create's rollback could not delete (see CreateContainer):
	// every container with a record is gone by now, so any dir left is one.
	ents, err := os.ReadDir(m.paths.ContainersDir(p.ID))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove pod %s: %w", p.ID, err)
	}
	for _, e := range ents {
		if err := m.removeContainerFiles(ctx, p, e.Name()); err != nil {
			return fmt.Errorf("remove pod %s: container left by a failed create: %w", p.ID, err)
		}
	}
	dir := m.paths.PodDir(p.ID)
	if err := m.deleteInShim(ctx, p, p.ID); err != nil {
		return fmt.Errorf("remove pod %s: infra: %w", p.ID, err)
	}
	m.set(func() { p.shimStopping = true })
	if err := m.shim(p).Shutdown(ctx); err != nil && !isConnErr(err) {
		return fmt.Errorf("remove pod %s: shut down shim: %w", p.ID, err)
	}
	_ = os.Remove(p.ShimSocket)
	if err := m.images.Unmount(dir); err != nil {
		return fmt.Errorf("remove pod %s: %w", p.ID, err)
	}
	if err := mount.Unmount(filepath.Join(dir, "shm")); err != nil {
		return fmt.Errorf("remove pod %s: %w", p.ID, err)
	}
	// A pod left half-made by a crash may have run CNI ADD without the
	// record saying so; DEL is idempotent, so run it.
	if p.NetworkDone || p.State == PodCreating {
		if err := m.teardownNetwork(ctx, p); err != nil {
			return err
		}
	}
	if p.NetnsPath != "" {
		if err := m.net.RemoveNetns(p.NetnsPath); err != nil {
			return fmt.Errorf("remove pod %s: %w", p.ID, err)
		}
	}
	if err := removeUserns(p.UsernsPath); err != nil {
		return fmt.Errorf("remove pod %s: %w", p.ID, err)
	}
	if p.OwnCgroup {
		if err := m.removeCgroup(p.Cgroup); err != nil {
			return fmt.Errorf("remove pod %s: %w", p.ID, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove pod %s: %w", p.ID, err)
	}
	m.set(func() {
		delete(m.pods, p.ID)
		delete(m.names, podKey(p.Config.GetMetadata()))
	})
	m.locks.Delete(p.ID)
	pv := m.viewPod(p)
	m.plugins.RemovePod(ctx, pv)
	m.emitPod(p, evDeleted)
	m.log.Info("pod sandbox removed", "id", p.ID)
	return nil
}

// deleteInShim destroys a container through its shim, or, with the shim
// gone, through husk-oci directly so that nothing is left behind.
func (m *Manager) deleteInShim(ctx context.Context, p *Pod, id string) error {
	err := m.shim(p).Delete(ctx, id)
	if err == nil || (shim.IsNotFound(err) && !m.ociStateExists(p, id)) {
		return nil
	}
	if !isConnErr(err) && !shim.IsNotFound(err) {
		return err
	}
	// The shim is gone (or never knew this container): destroy it here.
	argv := m.podRuntime(p).DeleteArgv(id)
	out, runErr := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if runErr != nil {
		return fmt.Errorf("%s delete %s: %v: %s", filepath.Base(argv[0]), id, runErr, strings.TrimSpace(string(out)))
	}
	return nil
}

func (m *Manager) ociStateExists(p *Pod, id string) bool {
	_, err := os.Stat(filepath.Join(m.podRuntime(p).Root, id))
	return err == nil
}

func isConnErr(err error) bool {
	var se *shim.Error
	return err != nil && !errors.As(err, &se) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}
