package sandbox

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/husk-runtime/husk/atomicfile"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Plugins are the node's NRI plugins (package nri), as the manager sees
// them: told of every change of a pod or container, and asked where NRI
// lets them change a container. The manager calls them with the pod's lock
// held and no other, in the pod's lifecycle order; the implementation
// delivers each stop and removal once, however many paths report it.
//
// Where the call may fail the operation (RunPod, CreateContainer,
// StartContainer, UpdateContainer), an error fails it and the operation
// rolls back; the others only tell.
type Plugins interface {
	// BlockSync holds back the synchronization of a plugin connecting
	// now until unblock: a change made meanwhile then reaches it either
	// in its sync or as an event, never neither.
	BlockSync() (unblock func())

	RunPod(ctx context.Context, pod PodView) error
	StopPod(ctx context.Context, pod PodView)
	RemovePod(ctx context.Context, pod PodView)

	// CreateContainer lets the plugins adjust spec, in place, before the
	// container is made with it.
	CreateContainer(ctx context.Context, pod PodView, ctr ContainerView, spec *specs.Spec) error
	PostCreateContainer(ctx context.Context, pod PodView, ctr ContainerView)
	StartContainer(ctx context.Context, pod PodView, ctr ContainerView) error
	PostStartContainer(ctx context.Context, pod PodView, ctr ContainerView)
	// UpdateContainer returns the resources to apply: res as the plugins
	// adjusted it.
	UpdateContainer(ctx context.Context, pod PodView, ctr ContainerView, res *runtimeapi.LinuxContainerResources) (*runtimeapi.LinuxContainerResources, error)
	PostUpdateContainer(ctx context.Context, pod PodView, ctr ContainerView)
	StopContainer(ctx context.Context, pod PodView, ctr ContainerView)
	RemoveContainer(ctx context.Context, pod PodView, ctr ContainerView)
}

// noPlugins is Plugins when NRI is off.
type noPlugins struct{}

func (noPlugins) BlockSync() func()                                           { return func() {} }
func (noPlugins) RunPod(context.Context, PodView) error                       { return nil }
func (noPlugins) StopPod(context.Context, PodView)                            {}
func (noPlugins) RemovePod(context.Context, PodView)                          {}
func (noPlugins) PostCreateContainer(context.Context, PodView, ContainerView) {}
func (noPlugins) StartContainer(context.Context, PodView, ContainerView) error {
	return nil
}
func (noPlugins) PostStartContainer(context.Context, PodView, ContainerView)  {}
func (noPlugins) PostUpdateContainer(context.Context, PodView, ContainerView) {}
func (noPlugins) StopContainer(context.Context, PodView, ContainerView)       {}
func (noPlugins) RemoveContainer(context.Context, PodView, ContainerView)     {}
func (noPlugins) CreateContainer(context.Context, PodView, ContainerView, *specs.Spec) error {
	return nil
}
func (noPlugins) UpdateContainer(_ context.Context, _ PodView, _ ContainerView, res *runtimeapi.LinuxContainerResources) (*runtimeapi.LinuxContainerResources, error) {
	return res, nil
}

// ContainerSpec is the OCI spec container id was made with (its
// config.json), for NRI's view of a container made before this daemon
// started.
func (m *Manager) ContainerSpec(id string) (*specs.Spec, error) {
	c, err := m.container(id)
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := atomicfile.ReadJSON(filepath.Join(m.paths.ContainerDir(c.PodID, c.ID), "config.json"), &spec); err != nil {
		return nil, err
	}
	return &spec, nil
}

// Snapshot is every pod and container that is fully made, for an NRI
// plugin's synchronization.
func (m *Manager) Snapshot(ctx context.Context) ([]PodView, []ContainerView) {
	return m.ListPodSandboxes(ctx), m.ListContainers(ctx)
}

// plugView is the pod and container views the plugins are told of.
func (m *Manager) plugView(p *Pod, c *Container) (PodView, ContainerView) {
	return m.viewPod(p), m.viewContainer(c)
}

// OCIResources is CRI's container resources as the OCI spec has them, as
// husk writes them into a container's spec.
func OCIResources(r *runtimeapi.LinuxContainerResources) *specs.LinuxResources {
	return resources(r)
}

// checkAdjusted refuses what NRI plugins may have put in a spec that the
// container could not be made with: runc's own error for it would name
// neither the plugin's part nor the field.
func checkAdjusted(spec *specs.Spec) error {
	for _, mnt := range spec.Mounts {
		if !filepath.IsAbs(mnt.Destination) || filepath.Clean(mnt.Destination) == "/" {
			return fmt.Errorf("a plugin's mount destination %q must be an absolute path below /", mnt.Destination)
		}
	}
	if spec.Process == nil || len(spec.Process.Args) == 0 {
		return errors.New("a plugin left the container no command (process.args)")
	}
	if spec.Linux == nil {
		return errors.New("a plugin removed the spec's linux section")
	}
	if spec.Linux.Resources == nil {
		spec.Linux.Resources = &specs.LinuxResources{}
	}
	return nil
}
