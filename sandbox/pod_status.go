package sandbox

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/husk-runtime/husk/atomicfile"
	"github.com/husk-runtime/husk/shim"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PodView is a consistent copy of a pod record for the CRI layer.
type PodView struct {
	Pod
	Ready bool
}

// PodSandbox returns the pod with id (or unique prefix), from memory: a pod
// whose infra process died is NOTREADY (watchExit tells), so kubelet
// recreates it.
func (m *Manager) PodSandbox(ctx context.Context, id string) (PodView, error) {
	p, err := m.pod(id)
	if err != nil {
		return PodView{}, err
	}
	return m.viewPod(p), nil
}

// PodConfig returns the config the pod (id or unique prefix) was made
// with, from memory: no readiness check, for callers that need only the
// config (CreateContainer's gate).
func (m *Manager) PodConfig(id string) (*runtimeapi.PodSandboxConfig, error) {
	p, err := m.pod(id)
	if err != nil {
		return nil, err
	}
	return p.Config, nil
}

// ListPodSandboxes returns every pod.
func (m *Manager) ListPodSandboxes(ctx context.Context) []PodView {
	m.mu.RLock()
	pods := make([]*Pod, 0, len(m.pods))
	for _, p := range m.pods {
		pods = append(pods, p)
	}
	m.mu.RUnlock()
	out := make([]PodView, 0, len(pods))
	for _, p := range pods {
		v := m.viewPod(p)
		if v.State == PodCreating {
			continue // not yet a sandbox kubelet may see
		}
		out = append(out, v)
	}
	return out
}

func (m *Manager) viewPod(p *Pod) PodView {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return PodView{Pod: *p, Ready: p.State == PodReady && p.infraExit == nil}
}

// refreshInfra notices an infra exit the shim recorded, reading its exit
// file: the exit file is written before anyone is told, so it is the truth.
// Only the calls that change a pod use it; the list and status calls
// answer from memory, which watchExit keeps true.
func (m *Manager) refreshInfra(p *Pod) {
	m.mu.RLock()
	known := p.infraExit != nil || p.State != PodReady
	m.mu.RUnlock()
	if known {
		return
	}
	var st shim.ExitStatus
	if err := atomicfile.ReadJSON(filepath.Join(m.paths.PodDir(p.ID), "exit.json"), &st); err != nil {
		return
	}
	m.noteInfraExit(p, &st)
}

// noteInfraExit records the exit of a ready pod's infra process, once.
func (m *Manager) noteInfraExit(p *Pod, st *shim.ExitStatus) {
	first := false
	m.set(func() {
		if first = p.infraExit == nil && p.State == PodReady; first {
			p.infraExit = st
		}
	})
	if !first {
		return
	}
	m.emitPod(p, evStopped)
	m.log.Warn("infra process of pod exited; pod is NOTREADY", "pod", p.ID, "code", st.Code)
}

func (m *Manager) podContainers(podID string) []*Container {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*Container
	for _, c := range m.ctrs {
		if c.PodID == podID {
			out = append(out, c)
		}
	}
	return out
}

// String names a pod in messages.
func (v PodView) String() string {
	md := v.Config.GetMetadata()
	return fmt.Sprintf("%s/%s (%s)", md.GetNamespace(), md.GetName(), v.ID)
}

func (m *Manager) podState(p *Pod) PodState {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return p.State
}
