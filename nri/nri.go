// Package nri makes husk an NRI runtime (github.com/containerd/nri's
// adaptation): plugins connect on a unix socket, are told of every pod and
// container change, and adjust a container at creation and its resources
// at update. It implements sandbox.Plugins; the manager decides when to
// call it and applies what it returns through its own spec path.
package nri

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"
	nrilog "github.com/containerd/nri/pkg/log"
	"github.com/husk-runtime/husk/sandbox"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Config is the [nri] table.
type Config struct {
	// SocketPath is where external plugins connect.
	SocketPath string
	// PluginPath holds plugins husk starts itself (NN-name executables),
	// PluginConfigPath their configuration drop-ins.
	PluginPath       string
	PluginConfigPath string
	// RegistrationTimeout bounds a plugin's registration, RequestTimeout
	// each of its answers: a plugin later than that is dropped and the
	// operation goes on without it (NRI's default failure policy).
	RegistrationTimeout time.Duration
	RequestTimeout      time.Duration
}

// Source is what NRI needs of the manager beside the events: the state a
// connecting plugin is synchronized with, and the changes plugins ask for
// on their own (package sandbox's Manager).
type Source interface {
	Snapshot(ctx context.Context) ([]sandbox.PodView, []sandbox.ContainerView)
	ContainerSpec(id string) (*specs.Spec, error)
	// ApplyPluginResources changes a container's resources without
	// telling the plugins (they asked for it).
	ApplyPluginResources(ctx context.Context, id string, res *runtimeapi.LinuxContainerResources) error
	StopContainer(ctx context.Context, id string, timeout int64) error
}

// Runtime is husk's side of NRI.
type Runtime struct {
	a      *adaptation.Adaptation
	log    *slog.Logger
	src    Source
	socket string

	// mu is held across each lifecycle delivery, so each pod and container
	// is told of in order, stopped once and removed once, whichever path
	// (a CRI call, the exit watcher) gets there first.
	mu   sync.Mutex
	pods map[string]*podState
	ctrs map[string]*ctrState
	// plugins counts the adaptation's plugins, for idle.
	plugins pluginCount
}

// pluginCount is NRI's Metrics, of which only the plugin count is kept:
// -1 (unknown, so events are delivered) until the adaptation first says.
// In adaptation v0.12.5 it says at Start, once the pre-installed plugins
// of the plugin path are started (sortPlugins), on every connection, and
// after every delivery (removeClosedPlugins).
type pluginCount struct{ n atomic.Int64 }

func (c *pluginCount) RecordPluginInvocation(string, string, error)      {}
func (c *pluginCount) RecordPluginLatency(string, string, time.Duration) {}
func (c *pluginCount) UpdatePluginCount(n int)                           { c.n.Store(int64(n)) }
func (c *pluginCount) RecordPluginAdjustments(string, string, *api.ContainerAdjustment, int, int) {
}

// idle says no plugin is connected, so an event need not be converted
// and delivered: converting a container with its spec (seccomp included)
// and the adaptation's result bookkeeping cost CreateContainer ~10 µs
// with nobody to tell, 0.5 µs skipped (BenchmarkCreateContainerNoPlugin). Only the events the manager sends under BlockSync
// skip (a plugin is synchronized, and counted, only between them, and
// the synchronization includes what was skipped); stops and removals,
// which the exit watcher also sends, are always delivered. The caller's
// bookkeeping is kept either way.
func (r *Runtime) idle() bool { return r.plugins.n.Load() == 0 }

type podState struct{ stopped bool }

type ctrState struct {
	pod     string
	spec    *specs.Spec // as made, plugins' adjustments included
	stopped bool
}

// ErrSocketInUse is returned by Start when another runtime serves NRI on
// the configured socket: taking it over (as NRI's listener would, by
// removing the file) would cut that runtime's plugins off silently.
var ErrSocketInUse = errors.New("NRI socket is served by another process")

// New makes the NRI runtime; Start opens it to plugins.
func New(cfg Config, name, version string, log *slog.Logger) (*Runtime, error) {
	r := &Runtime{log: log, pods: map[string]*podState{}, ctrs: map[string]*ctrState{}}
	r.plugins.n.Store(-1)
	nrilog.Set(newLogger(log))
	// NRI keeps these process-wide; husk runs one NRI runtime.
	if cfg.RegistrationTimeout > 0 {
		adaptation.SetPluginRegistrationTimeout(cfg.RegistrationTimeout)
	}
	if cfg.RequestTimeout > 0 {
		adaptation.SetPluginRequestTimeout(cfg.RequestTimeout)
	}
	opts := []adaptation.Option{
		adaptation.WithSocketPath(cfg.SocketPath),
		adaptation.WithPluginPath(cfg.PluginPath),
		adaptation.WithPluginConfigPath(cfg.PluginConfigPath),
		adaptation.WithMetrics(&r.plugins),
	}
	a, err := adaptation.New(name, version, r.synchronize, r.updateFromPlugin, opts...)
	if err != nil {
		return nil, fmt.Errorf("NRI: %w", err)
	}
	r.a = a
	r.socket = cfg.SocketPath
	return r, nil
}

// Start synchronizes nothing yet: it opens the socket to plugins, which
// are synchronized with src as they connect.
func (r *Runtime) Start(src Source) error {
	r.mu.Lock()
	r.src = src
	r.mu.Unlock()
	if socketServed(r.socket) {
		return fmt.Errorf("%s: %w", r.socket, ErrSocketInUse)
	}
	if err := r.a.Start(); err != nil {
		return fmt.Errorf("NRI: %w", err)
	}
	return nil
}

// Stop closes the socket and the plugins' connections.
func (r *Runtime) Stop() { r.a.Stop() }

// socketServed says whether something answers on path.
func socketServed(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// BlockSync implements sandbox.Plugins.
func (r *Runtime) BlockSync() func() { return r.a.BlockPluginSync().Unblock }

// RunPod implements sandbox.Plugins.
func (r *Runtime) RunPod(ctx context.Context, pod sandbox.PodView) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pods[pod.ID] = &podState{}
	if r.idle() {
		return nil
	}
	return r.a.RunPodSandbox(ctx, &api.RunPodSandboxRequest{Pod: podToNRI(pod)})
}

// StopPod implements sandbox.Plugins: once per pod, after a stop of each
// of its containers not yet told.
func (r *Runtime) StopPod(ctx context.Context, pod sandbox.PodView) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := r.pods[pod.ID]
	if ps == nil || ps.stopped {
		return
	}
	ps.stopped = true
	p := podToNRI(pod)
	for _, id := range r.podContainersLocked(pod.ID) {
		if cs := r.ctrs[id]; !cs.stopped {
			r.stopLocked(ctx, p, id, cs, nil)
		}
	}
	if err := r.a.StopPodSandbox(ctx, &api.StopPodSandboxRequest{Pod: p}); err != nil {
		r.log.Warn("NRI: StopPodSandbox", "pod", pod.ID, "error", err)
	}
}

// RemovePod implements sandbox.Plugins.
func (r *Runtime) RemovePod(ctx context.Context, pod sandbox.PodView) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := r.pods[pod.ID]
	if ps == nil {
		return
	}
	p := podToNRI(pod)
	for _, id := range r.podContainersLocked(pod.ID) {
		r.removeLocked(ctx, p, id, r.ctrs[id], nil)
	}
	if !ps.stopped {
		if err := r.a.StopPodSandbox(ctx, &api.StopPodSandboxRequest{Pod: p}); err != nil {
			r.log.Warn("NRI: StopPodSandbox", "pod", pod.ID, "error", err)
		}
	}
	delete(r.pods, pod.ID)
	if err := r.a.RemovePodSandbox(ctx, &api.RemovePodSandboxRequest{Pod: p}); err != nil {
		r.log.Warn("NRI: RemovePodSandbox", "pod", pod.ID, "error", err)
	}
}

// CreateContainer implements sandbox.Plugins: the plugins' adjustments are
// applied to spec; their updates of other containers and their evictions
// are carried out afterwards, off the caller's pod lock.
func (r *Runtime) CreateContainer(ctx context.Context, pod sandbox.PodView, ctr sandbox.ContainerView, spec *specs.Spec) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.trackPod(pod.ID)
	if r.idle() {
		r.ctrs[ctr.ID] = &ctrState{pod: pod.ID, spec: spec}
		return nil
	}
	c := containerToNRI(ctr, spec)
	c.State = api.ContainerState_CONTAINER_CREATED
	rsp, err := r.a.CreateContainer(ctx, &api.CreateContainerRequest{Pod: podToNRI(pod), Container: c})
	if err != nil {
		return err
	}
	if err := adjustSpec(spec, rsp.GetAdjust()); err != nil {
		return err
	}
	r.ctrs[ctr.ID] = &ctrState{pod: pod.ID, spec: spec}
	r.later(rsp.GetUpdate(), rsp.GetEvict())
	return nil
}

// PostCreateContainer implements sandbox.Plugins.
func (r *Runtime) PostCreateContainer(ctx context.Context, pod sandbox.PodView, ctr sandbox.ContainerView) {
	r.tell(ctx, "PostCreateContainer", pod, ctr, func(p *api.PodSandbox, c *api.Container) error {
		return r.a.PostCreateContainer(ctx, &api.PostCreateContainerRequest{Pod: p, Container: c})
	})
}

// StartContainer implements sandbox.Plugins.
func (r *Runtime) StartContainer(ctx context.Context, pod sandbox.PodView, ctr sandbox.ContainerView) error {
	if r.idle() {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.containerLocked(ctr)
	if c == nil {
		return nil
	}
	return r.a.StartContainer(ctx, &api.StartContainerRequest{Pod: podToNRI(pod), Container: c})
}

// PostStartContainer implements sandbox.Plugins.
func (r *Runtime) PostStartContainer(ctx context.Context, pod sandbox.PodView, ctr sandbox.ContainerView) {
	r.tell(ctx, "PostStartContainer", pod, ctr, func(p *api.PodSandbox, c *api.Container) error {
		return r.a.PostStartContainer(ctx, &api.PostStartContainerRequest{Pod: p, Container: c})
	})
}

// tell delivers event (one that cannot fail what happened) about ctr,
// logging a plugin's failure.
func (r *Runtime) tell(ctx context.Context, event string, pod sandbox.PodView, ctr sandbox.ContainerView, send func(*api.PodSandbox, *api.Container) error) {
	if r.idle() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.containerLocked(ctr)
	if c == nil {
		return
	}
	if err := send(podToNRI(pod), c); err != nil {
		r.log.Warn("NRI: "+event, "container", ctr.ID, "error", err)
	}
}

// UpdateContainer implements sandbox.Plugins.
func (r *Runtime) UpdateContainer(ctx context.Context, pod sandbox.PodView, ctr sandbox.ContainerView, res *runtimeapi.LinuxContainerResources) (*runtimeapi.LinuxContainerResources, error) {
	if r.idle() {
		return res, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.containerLocked(ctr)
	if c == nil {
		return res, nil
	}
	rsp, err := r.a.UpdateContainer(ctx, &api.UpdateContainerRequest{Pod: podToNRI(pod), Container: c, LinuxResources: resourcesToNRI(res)})
	if err != nil {
		return nil, err
	}
	out := res
	var others []*api.ContainerUpdate
	for _, u := range rsp.GetUpdate() {
		if u.GetContainerId() == ctr.ID {
			// A plugin's answer for the container being updated is the
			// resources to apply, on top of what kubelet asked.
			out = mergeResources(res, u.GetLinux().GetResources())
			continue
		}
		others = append(others, u)
	}
	r.later(others, rsp.GetEvict())
	return out, nil
}

// PostUpdateContainer implements sandbox.Plugins.
func (r *Runtime) PostUpdateContainer(ctx context.Context, pod sandbox.PodView, ctr sandbox.ContainerView) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cs := r.ctrs[ctr.ID]
	if cs == nil {
		return
	}
	if res := ctr.Config.GetLinux().GetResources(); res != nil && cs.spec != nil {
		// NRI's view of the container follows the update.
		if cs.spec.Linux == nil {
			cs.spec.Linux = &specs.Linux{}
		}
		next := sandbox.OCIResources(res)
		if old := cs.spec.Linux.Resources; old != nil {
			next.Devices = old.Devices // the device rules are not resized
		}
		cs.spec.Linux.Resources = next
	}
	if r.idle() {
		return
	}
	c := r.containerLocked(ctr)
	if err := r.a.PostUpdateContainer(ctx, &api.PostUpdateContainerRequest{Pod: podToNRI(pod), Container: c}); err != nil {
		r.log.Warn("NRI: PostUpdateContainer", "container", ctr.ID, "error", err)
	}
}

// StopContainer implements sandbox.Plugins: once per container.
func (r *Runtime) StopContainer(ctx context.Context, pod sandbox.PodView, ctr sandbox.ContainerView) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cs := r.ctrs[ctr.ID]
	if cs == nil || cs.stopped {
		return
	}
	r.stopLocked(ctx, podToNRI(pod), ctr.ID, cs, &ctr)
}

// RemoveContainer implements sandbox.Plugins: a container never told
// stopped is told so first.
func (r *Runtime) RemoveContainer(ctx context.Context, pod sandbox.PodView, ctr sandbox.ContainerView) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cs := r.ctrs[ctr.ID]
	if cs == nil {
		return
	}
	r.removeLocked(ctx, podToNRI(pod), ctr.ID, cs, &ctr)
}

func (r *Runtime) stopLocked(ctx context.Context, pod *api.PodSandbox, id string, cs *ctrState, ctr *sandbox.ContainerView) {
	cs.stopped = true
	c := r.cachedLocked(id, cs, ctr)
	c.State = api.ContainerState_CONTAINER_STOPPED
	rsp, err := r.a.StopContainer(ctx, &api.StopContainerRequest{Pod: pod, Container: c})
	if err != nil {
		r.log.Warn("NRI: StopContainer", "container", id, "error", err)
		return
	}
	r.later(rsp.GetUpdate(), nil)
}

func (r *Runtime) removeLocked(ctx context.Context, pod *api.PodSandbox, id string, cs *ctrState, ctr *sandbox.ContainerView) {
	if !cs.stopped {
		r.stopLocked(ctx, pod, id, cs, ctr)
	}
	c := r.cachedLocked(id, cs, ctr)
	c.State = api.ContainerState_CONTAINER_STOPPED
	delete(r.ctrs, id)
	if err := r.a.RemoveContainer(ctx, &api.RemoveContainerRequest{Pod: pod, Container: c}); err != nil {
		r.log.Warn("NRI: RemoveContainer", "container", id, "error", err)
	}
}

// podContainersLocked lists the containers of pod tracked, in id order
// (a pod's containers are told of in one order every time).
func (r *Runtime) podContainersLocked(pod string) []string {
	var ids []string
	for id, cs := range r.ctrs {
		if cs.pod == pod {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// trackPod notes a pod made before this daemon started, so its stop and
// removal are told.
func (r *Runtime) trackPod(id string) {
	if r.pods[id] == nil {
		r.pods[id] = &podState{}
	}
}

// containerLocked is NRI's view of ctr, its spec from the cache or, for a
// container made before this daemon started, from its config.json.
func (r *Runtime) containerLocked(ctr sandbox.ContainerView) *api.Container {
	cs := r.ctrs[ctr.ID]
	if cs == nil {
		if r.src == nil {
			return nil // not started: no plugin to tell
		}
		spec, err := r.src.ContainerSpec(ctr.ID)
		if err != nil {
			r.log.Warn("NRI: container spec", "container", ctr.ID, "error", err)
			return nil
		}
		r.trackPod(ctr.PodID)
		cs = &ctrState{pod: ctr.PodID, spec: spec, stopped: ctr.State == sandbox.ContainerExited}
		r.ctrs[ctr.ID] = cs
	}
	return containerToNRI(ctr, cs.spec)
}

// cachedLocked is NRI's view of container id from the cache, with ctr's
// state when the caller has it (StopPod and RemovePod tell of containers
// they have no view of).
func (r *Runtime) cachedLocked(id string, cs *ctrState, ctr *sandbox.ContainerView) *api.Container {
	if ctr != nil {
		return containerToNRI(*ctr, cs.spec)
	}
	return containerToNRI(sandbox.ContainerView{Container: sandbox.Container{ID: id, PodID: cs.pod}}, cs.spec)
}

// synchronize is NRI's SyncFn: a connecting plugin is given every pod and
// container, and its updates are applied. The manager's BlockSync callers
// are held off meanwhile, so nothing changes between the snapshot and the
// plugin's first event.
func (r *Runtime) synchronize(ctx context.Context, cb adaptation.SyncCB) error {
	pods, ctrs := r.src.Snapshot(ctx)
	var nPods []*api.PodSandbox
	for _, p := range pods {
		nPods = append(nPods, podToNRI(p))
	}
	var nCtrs []*api.Container
	r.mu.Lock()
	for _, c := range ctrs {
		if nc := r.containerLocked(c); nc != nil {
			nCtrs = append(nCtrs, nc)
		}
	}
	for _, p := range pods {
		r.trackPod(p.ID)
	}
	r.mu.Unlock()
	updates, err := cb(ctx, nPods, nCtrs)
	if err != nil {
		return err
	}
	failed, err := r.updateFromPlugin(ctx, updates)
	if err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("NRI: %d container updates of the plugin's synchronization failed", len(failed))
	}
	return nil
}

// updateFromPlugin is NRI's UpdateFn: a plugin's own update of containers'
// resources. It returns the updates that failed and may not be ignored.
func (r *Runtime) updateFromPlugin(ctx context.Context, updates []*api.ContainerUpdate) ([]*api.ContainerUpdate, error) {
	var failed []*api.ContainerUpdate
	for _, u := range updates {
		res := mergeResources(nil, u.GetLinux().GetResources())
		if err := r.src.ApplyPluginResources(ctx, u.GetContainerId(), res); err != nil {
			r.log.Warn("NRI: plugin's update of a container failed", "container", u.GetContainerId(), "error", err)
			if !u.GetIgnoreFailure() {
				failed = append(failed, u)
			}
		}
	}
	return failed, nil
}

// later carries out updates and evictions plugins asked for in answer to
// an event, in the background: they name other containers, whose pods'
// locks the caller may hold or wait behind.
func (r *Runtime) later(updates []*api.ContainerUpdate, evict []*api.ContainerEviction) {
	if len(updates) == 0 && len(evict) == 0 {
		return
	}
	go func() {
		ctx := context.Background()
		_, _ = r.updateFromPlugin(ctx, updates)
		for _, e := range evict {
			r.log.Info("NRI: plugin evicts a container", "container", e.GetContainerId(), "reason", e.GetReason())
			if err := r.src.StopContainer(ctx, e.GetContainerId(), 0); err != nil {
				r.log.Warn("NRI: eviction", "container", e.GetContainerId(), "error", err)
			}
		}
	}()
}
