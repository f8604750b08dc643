package sandbox

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/husk-runtime/husk/atomicfile"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ExecResult is what ExecSync returns.
type ExecResult struct {
	Stdout, Stderr []byte
	ExitCode       int32
}

// ExecSync runs cmd in a running container and waits up to timeout (0: no
// limit). Past the timeout the process is killed and the error wraps
// ErrDeadlineExceeded: kubelet's exec probes read that code as a timeout.
func (m *Manager) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (*ExecResult, error) {
	c, p, proc, err := m.execProcess(id, cmd)
	if err != nil {
		return nil, err
	}
	res, err := m.shim(p).Exec(ctx, c.ID, proc, timeout)
	if err != nil {
		return nil, fmt.Errorf("exec %q in %s: %w", cmd, c.ID, shimRefusal(err))
	}
	if res.TimedOut {
		return nil, fmt.Errorf("command %q in container %s timed out after %s: %w", cmd, c.ID, timeout, ErrDeadlineExceeded)
	}
	return &ExecResult{Stdout: res.Stdout, Stderr: res.Stderr, ExitCode: int32(res.ExitCode)}, nil
}

// runningContainer finds a container that runs, and its pod.
func (m *Manager) runningContainer(id string) (*Container, *Pod, error) {
	c, p, err := m.containerAndPod(id)
	if err != nil {
		return nil, nil, err
	}
	m.refreshContainer(c)
	if st := m.containerState(c); st != ContainerRunning {
		return nil, nil, fmt.Errorf("container %s is %s, not running: %w", c.ID, st, ErrFailedPrecondition)
	}
	return c, p, nil
}

// execProcess is the process an exec of cmd runs: as the container's own
// process does, with the same user, env, cwd and capabilities.
func (m *Manager) execProcess(id string, cmd []string) (*Container, *Pod, *specs.Process, error) {
	if len(cmd) == 0 {
		return nil, nil, nil, fmt.Errorf("exec: empty command: %w", ErrInvalid)
	}
	c, p, err := m.runningContainer(id)
	if err != nil {
		return nil, nil, nil, err
	}
	var spec specs.Spec
	if err := atomicfile.ReadJSON(filepath.Join(m.paths.ContainerDir(p.ID, c.ID), "config.json"), &spec); err != nil {
		return nil, nil, nil, fmt.Errorf("exec in %s: %w", c.ID, err)
	}
	proc := *spec.Process
	proc.Args = cmd
	proc.Terminal = false
	proc.OOMScoreAdj = nil
	return c, p, &proc, nil
}
