package sandbox

import (
	"context"
	"fmt"

	"github.com/husk-runtime/husk/checkpoint"
	"github.com/husk-runtime/husk/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// errNoCheckpoints is the answer where CRIU works: the checkpoint itself
// is not built yet (package checkpoint).
var errNoCheckpoints = errdefs.New(errdefs.ErrNotImplemented, "checkpoints with CRIU are not built in husk yet")

// CheckpointContainer checks what a checkpoint of container id needs, in
// the order a caller can act on: the container (NotFound), running
// (FailedPrecondition), CRIU on this node (FailedPrecondition naming what
// `criu check` reports). Nothing is written.
func (m *Manager) CheckpointContainer(ctx context.Context, id string) error {
	c, err := m.container(id)
	if err != nil {
		return err
	}
	m.refreshContainer(c)
	if st := m.containerState(c); st != ContainerRunning {
		return fmt.Errorf("container %s is %s, only a running container can be checkpointed: %w", c.ID, st, ErrFailedPrecondition)
	}
	return m.criuReady(ctx)
}

// CheckpointPod is CheckpointContainer for containers ids of pod podID,
// which must be the pod's and running; the caller has checked the list is
// non-empty and without duplicates.
func (m *Manager) CheckpointPod(ctx context.Context, podID string, ids []string) error {
	p, err := m.pod(podID)
	if err != nil {
		return err
	}
	m.refreshInfra(p)
	if v := m.viewPod(p); !v.Ready {
		return fmt.Errorf("pod sandbox %s is not ready, only a running pod can be checkpointed: %w", p.ID, ErrFailedPrecondition)
	}
	for _, id := range ids {
		c, err := m.container(id)
		if err != nil {
			return err
		}
		if c.PodID != p.ID {
			return fmt.Errorf("container_ids: container %s is of pod %s, not %s: %w", c.ID, c.PodID, p.ID, ErrInvalid)
		}
		m.refreshContainer(c)
		if st := m.containerState(c); st != ContainerRunning {
			return fmt.Errorf("container %s is %s, only running containers can be checkpointed: %w", c.ID, st, ErrFailedPrecondition)
		}
	}
	return m.criuReady(ctx)
}

// RestorePod checks what a restore needs: a known handler, then CRIU.
func (m *Manager) RestorePod(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, handler string) error {
	if _, err := m.handler(handler); err != nil {
		return err
	}
	return m.criuReady(ctx)
}

// criuReady is the node's answer once a request is valid: why CRIU cannot
// work here, or that checkpoints are not built.
func (m *Manager) criuReady(ctx context.Context) error {
	criu := m.cfg.CRIU
	if criu == "" {
		criu = checkpoint.DefaultCRIU
	}
	if err := checkpoint.Check(ctx, criu); err != nil {
		return err
	}
	return errNoCheckpoints
}
