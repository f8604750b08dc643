package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// infraStopGrace is how long the pause gets to exit on SIGTERM; it handles
// the signal at once, so this only bounds a stuck process.
const infraStopGrace = 2 * time.Second

// StopPodSandbox stops every container of the pod, then the infra process,
// and tears the network down. It is idempotent: kubelet calls it more than
// once, also after a daemon restart and with the netns already gone.
func (m *Manager) StopPodSandbox(ctx context.Context, id string) error {
	p, err := m.pod(id)
	if errors.Is(err, ErrNotFound) {
		return nil // CRI: stopping an unknown sandbox succeeds
	}
	defer m.plugins.BlockSync()()
	if err != nil {
		return err
	}
	unlock, live := m.lockLive(p)
	defer unlock()
	if !live {
		return nil // removed meanwhile: stopped, as CRI has it
	}
	return m.stopPod(ctx, p)
}

func (m *Manager) stopPod(ctx context.Context, p *Pod) error {
	for _, c := range m.podContainers(p.ID) {
		// StopPodSandbox forcibly stops what kubelet did not stop first.
		if err := m.stopContainer(ctx, c, 0); err != nil {
			return fmt.Errorf("stop pod %s: %w", p.ID, err)
		}
	}
	// NRI: the containers stopped, the sandbox still whole.
	pv := m.viewPod(p)
	m.plugins.StopPod(ctx, pv)
	if err := m.stopInfra(ctx, p); err != nil {
		return err
	}
	if err := m.teardownNetwork(ctx, p); err != nil {
		return err
	}
	err := m.updatePod(p, func() { p.State = PodNotReady })
	m.emitPod(p, evStopped)
	return err
}

func (m *Manager) stopInfra(ctx context.Context, p *Pod) error {
	c := m.shim(p)
	if _, done, err := c.Wait(ctx, p.ID, time.Millisecond); err == nil && done {
		return nil
	} else if err != nil {
		if m.shimDead(ctx, p) {
			return nil // nothing left to stop: the infra died with its shim
		}
		if shimNotFound(err) {
			// The shim holds no infra: a daemon killed mid-way through
			// RunPodSandbox or StopPodSandbox left the record behind
			// what the shim had done. Nothing runs to stop.
			return nil
		}
		return fmt.Errorf("stop pod %s: %w", p.ID, err)
	}
	if err := c.Kill(ctx, p.ID, int(unix.SIGTERM)); err != nil {
		return fmt.Errorf("stop pod %s: signal infra: %w", p.ID, err)
	}
	if _, done, err := c.Wait(ctx, p.ID, infraStopGrace); err != nil {
		return fmt.Errorf("stop pod %s: wait for infra: %w", p.ID, err)
	} else if done {
		return nil
	}
	if err := c.Kill(ctx, p.ID, int(unix.SIGKILL)); err != nil {
		return fmt.Errorf("stop pod %s: kill infra: %w", p.ID, err)
	}
	if _, done, err := c.Wait(ctx, p.ID, 10*time.Second); err != nil || !done {
		return fmt.Errorf("stop pod %s: infra survived SIGKILL: %v", p.ID, err)
	}
	return nil
}

// teardownNetwork runs CNI DEL until it has succeeded once, then drops the
// netns. DEL also works with the netns gone: the plugins still release the
// IP lease and the port mappings from the CNI cache.
func (m *Manager) teardownNetwork(ctx context.Context, p *Pod) error {
	if p.HostNetwork {
		return nil
	}
	pn := podNetwork(p)
	if !netnsExists(p.NetnsPath) {
		pn.NetnsPath = ""
	}
	if err := m.net.Teardown(ctx, pn); err != nil {
		return fmt.Errorf("stop pod %s: tear down network: %w", p.ID, err)
	}
	m.set(func() { p.NetworkDone = false })
	if err := m.net.RemoveNetns(p.NetnsPath); err != nil {
		return fmt.Errorf("stop pod %s: %w", p.ID, err)
	}
	return nil
}

func netnsExists(path string) bool {
	if path == "" {
		return false
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	// A pinned netns is a bind mount of an nsfs inode; an empty file left
	// by a crash is not a namespace.
	return st.Type == unix.NSFS_MAGIC
}

// shimDead reports whether the pod's shim is gone for good.
func (m *Manager) shimDead(ctx context.Context, p *Pod) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err := m.shim(p).Version(ctx)
	return err != nil && !errors.Is(err, context.DeadlineExceeded)
}
