package sandbox

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// UpdatePodSandboxResources records the pod-level overhead and resources
// in the sandbox's config. CRI: kubelet calls it after it has resized the
// pod's cgroup itself, so the runtime only keeps its copy of the config in
// step (what PodSandboxStatus and a later recovery see); nothing is
// written to the cgroup here.
func (m *Manager) UpdatePodSandboxResources(ctx context.Context, id string, overhead, res *runtimeapi.LinuxContainerResources) error {
	p, err := m.pod(id)
	if err != nil {
		return err
	}
	unlock, live := m.lockLive(p)
	defer unlock()
	if !live {
		return fmt.Errorf("pod sandbox %s was removed: %w", id, ErrNotFound)
	}
	m.set(func() {
		cfg := proto.Clone(p.Config).(*runtimeapi.PodSandboxConfig)
		if cfg.Linux == nil {
			cfg.Linux = &runtimeapi.LinuxPodSandboxConfig{}
		}
		if overhead != nil {
			cfg.Linux.Overhead = overhead
		}
		if res != nil {
			cfg.Linux.Resources = res
		}
		p.Config = cfg
	})
	return m.savePod(p)
}
