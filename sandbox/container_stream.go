package sandbox

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/husk-runtime/husk/shim"
)

// StreamTarget is a running container as the streaming server needs it.
type StreamTarget struct {
	ID        string // full id (the request may carry a prefix)
	Tty       bool   // created with a tty
	Stdin     bool   // created with stdin
	StdinOnce bool   // its stdin closes when the first attach session ends
}

// RunningContainer checks that id names a running container, for the CRI
// Exec and Attach calls that only hand out a URL: the checks happen there,
// where kubelet can read the gRPC code, not later on the stream.
func (m *Manager) RunningContainer(id string) (*StreamTarget, error) {
	c, _, err := m.runningContainer(id)
	if err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	cfg := c.Config
	return &StreamTarget{ID: c.ID, Tty: cfg.GetTty(), Stdin: cfg.GetStdin(), StdinOnce: cfg.GetStdinOnce()}, nil
}

// ExecStream starts cmd in a running container with a pty (tty) or pipes,
// and returns the session whose descriptors the caller copies. The process
// runs as the container's own does (user, env, cwd, capabilities).
func (m *Manager) ExecStream(ctx context.Context, id string, cmd []string, tty, stdin bool) (*shim.Stream, error) {
	c, p, proc, err := m.execProcess(id, cmd)
	if err != nil {
		return nil, err
	}
	proc.Terminal = tty
	proc.ConsoleSize = nil // the client's first resize sets it
	if tty && !hasEnv(proc.Env, "TERM") {
		// As containerd and CRI-O do: programs need a terminal type to
		// drive a pty, and an image rarely sets one.
		proc.Env = append(append([]string(nil), proc.Env...), "TERM=xterm")
	}
	s, err := m.shim(p).ExecStream(ctx, c.ID, proc, stdin)
	if err != nil {
		return nil, fmt.Errorf("exec %q in %s: %w", cmd, c.ID, shimRefusal(err))
	}
	return s, nil
}

// Attach joins the running container's main process stdio.
func (m *Manager) Attach(ctx context.Context, id string, stdin, stdout, stderr bool) (*shim.Stream, error) {
	c, p, err := m.runningContainer(id)
	if err != nil {
		return nil, err
	}
	s, err := m.shim(p).Attach(ctx, c.ID, stdin, stdout, stderr)
	if err != nil {
		return nil, fmt.Errorf("attach to %s: %w", c.ID, shimRefusal(err))
	}
	return s, nil
}

// PortForwardNetns returns the network namespace to dial a pod's ports in:
// empty for a host-network pod, whose ports are the host's.
func (m *Manager) PortForwardNetns(podID string) (string, error) {
	p, err := m.pod(podID)
	if err != nil {
		return "", err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if p.HostNetwork {
		return "", nil
	}
	if p.State != PodReady || p.NetnsPath == "" {
		return "", fmt.Errorf("pod sandbox %s is %s, not ready: %w", p.ID, p.State, ErrFailedPrecondition)
	}
	return p.NetnsPath, nil
}

// PodForPortForward checks that podID names a ready pod and returns its
// full id, for the CRI PortForward call.
func (m *Manager) PodForPortForward(podID string) (string, error) {
	p, err := m.pod(podID)
	if err != nil {
		return "", err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if p.State != PodReady {
		return "", fmt.Errorf("pod sandbox %s is %s, not ready: %w", p.ID, p.State, ErrFailedPrecondition)
	}
	return p.ID, nil
}

// shimRefusal classifies a shim's refusal (of an exec, attach, stream or
// update): a shim from before streaming does not know the method, and a
// container it does not hold or that has stopped, also one that stopped
// while the call ran, is a precondition the caller can act on.
func shimRefusal(err error) error {
	var se *shim.Error
	if !errors.As(err, &se) {
		return err
	}
	switch {
	case se.Code == shim.CodeBadRequest && strings.Contains(se.Message, "unknown method"):
		return fmt.Errorf("the pod's shim predates streaming; recreate the pod: %v: %w", err, ErrFailedPrecondition)
	case se.Code == shim.CodeBadRequest, se.Code == shim.CodeNotFound:
		return fmt.Errorf("%v: %w", err, ErrFailedPrecondition)
	}
	return err
}

func hasEnv(env []string, key string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, key+"=") {
			return true
		}
	}
	return false
}
