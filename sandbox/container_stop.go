package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/husk-runtime/husk/shim"
	"github.com/moby/sys/signal"
	"golang.org/x/sys/unix"
)

// StopContainer stops a running container: its stop signal (the image's
// STOPSIGNAL, or SIGTERM), up to timeout seconds of grace, then SIGKILL.
// CRI: stopping an unknown or already stopped container succeeds.
func (m *Manager) StopContainer(ctx context.Context, id string, timeout int64) error {
	c, err := m.container(id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer m.plugins.BlockSync()()
	mu := m.podMutex(c.PodID)
	mu.Lock()
	defer mu.Unlock()
	// The grace period is waited out without the pod lock: kubelet stops
	// a pod's containers in parallel (one call each, each with the pod's
	// grace period); under the lock a pod of n containers that ignore
	// SIGTERM took n grace periods to stop, and blocked every other call
	// on the pod meanwhile.
	err = m.stopContainerWaiting(ctx, c, time.Duration(timeout)*time.Second, func(wait func()) {
		mu.Unlock()
		defer mu.Lock()
		wait()
	})
	if err == nil && m.containerState(c) == ContainerExited {
		// Told before StopContainer answers, as containerd does; the exit
		// watcher's own word of it then finds it told.
		if p, perr := m.pod(c.PodID); perr == nil {
			pv, cv := m.plugView(p, c)
			m.plugins.StopContainer(ctx, pv, cv)
		}
	}
	return err
}

// stopContainer stops c under the pod lock the caller holds.
func (m *Manager) stopContainer(ctx context.Context, c *Container, grace time.Duration) error {
	return m.stopContainerWaiting(ctx, c, grace, func(wait func()) { wait() })
}

// stopContainerWaiting is stopContainer; waitGrace runs the wait of the
// grace period (and may release the pod lock for it).
func (m *Manager) stopContainerWaiting(ctx context.Context, c *Container, grace time.Duration, waitGrace func(wait func())) error {
	m.refreshContainer(c)
	st := m.containerState(c)
	if st == ContainerExited || st == ContainerCreating {
		return nil
	}
	p, err := m.pod(c.PodID)
	if err != nil {
		return err
	}
	client := m.shim(p)
	if grace > 0 {
		sig := unix.SIGTERM
		if name := m.stopSignal(c); name != "" {
			if s, err := signal.ParseSignal(name); err == nil {
				sig = s
			}
		}
		if err := client.Kill(ctx, c.ID, int(sig)); err != nil {
			return m.shimFailed(ctx, p, c, fmt.Errorf("stop container %s: signal %v: %w", c.ID, sig, err))
		}
		var done bool
		var err error
		waitGrace(func() { _, done, err = client.Wait(ctx, c.ID, grace) })
		if err != nil {
			return fmt.Errorf("stop container %s: %w", c.ID, err)
		} else if done {
			m.refreshContainer(c)
			return nil
		}
		if _, err := m.container(c.ID); errors.Is(err, ErrNotFound) {
			return nil // removed while its grace period ran
		}
	}
	if err := client.Kill(ctx, c.ID, int(unix.SIGKILL)); err != nil {
		return m.shimFailed(ctx, p, c, fmt.Errorf("stop container %s: SIGKILL: %w", c.ID, err))
	}
	if _, done, err := client.Wait(ctx, c.ID, 10*time.Second); err != nil {
		return fmt.Errorf("stop container %s: %w", c.ID, err)
	} else if !done {
		return fmt.Errorf("stop container %s: still running 10s after SIGKILL", c.ID)
	}
	m.refreshContainer(c)
	return nil
}

// shimFailed turns an unreachable shim into an exited container: its
// processes have no supervisor left, so there is nothing to stop.
func (m *Manager) shimFailed(ctx context.Context, p *Pod, c *Container, err error) error {
	if isConnErr(err) && m.shimDead(ctx, p) || shimNotFound(err) {
		// No supervisor left, or a live shim that holds no such
		// container (it was deleted there while the daemon was down):
		// nothing runs to stop.
		m.markShimDead(c)
		return nil
	}
	return err
}

// shimNotFound says the shim answered that it holds no such container.
func shimNotFound(err error) bool {
	var se *shim.Error
	return errors.As(err, &se) && se.Code == shim.CodeNotFound
}

func (m *Manager) stopSignal(c *Container) string {
	img, err := m.images.Resolve(c.ImageID)
	if err != nil {
		return ""
	}
	return img.Config.StopSignal
}
