package sandbox

import (
	"context"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/codes"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/husk-runtime/husk/atomicfile"
	"github.com/husk-runtime/husk/mount"
	"github.com/husk-runtime/husk/network"
	"github.com/husk-runtime/husk/shim"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// undo is a stack of rollback steps: a multi-step operation that fails
// undoes what it did, in reverse, so no half-made pod is left. Defer
// rollback first; commit once every step has succeeded.
type undo struct {
	steps     []func()
	committed bool
}

func (u *undo) push(f func()) { u.steps = append(u.steps, f) }
func (u *undo) commit()       { u.committed = true }
func (u *undo) rollback() {
	if u.committed {
		return
	}
	for i := len(u.steps) - 1; i >= 0; i-- {
		u.steps[i]()
	}
}

func podKey(md *runtimeapi.PodSandboxMetadata) string {
	return fmt.Sprintf("pod/%s/%s/%s/%d", md.GetNamespace(), md.GetName(), md.GetUid(), md.GetAttempt())
}

// RunPodSandbox creates and starts a pod: netns and CNI, pod files, the
// shim and the infra container. The shim needs only the pod dir and CNI
// ADD only the pinned netns, so each runs beside the steps that follow it
// and is waited for where its result is needed.
func (m *Manager) RunPodSandbox(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, handler string) (string, error) {
	md := cfg.GetMetadata()
	if md == nil || md.GetName() == "" || md.GetNamespace() == "" || md.GetUid() == "" {
		return "", fmt.Errorf("pod sandbox config needs metadata with name, namespace and uid (got %v): %w", md, ErrInvalid)
	}
	if h := cfg.GetHostname(); h != "" {
		if err := network.ValidateHostname(h); err != nil {
			return "", fmt.Errorf("pod %s: %v: %w", md.GetName(), err, ErrInvalid)
		}
	}
	h, err := m.handler(handler)
	if err != nil {
		return "", err
	}
	// Before any pod lock: a plugin's synchronization, which this holds
	// back, may take pod locks to apply its updates.
	defer m.plugins.BlockSync()()
	id := newID()
	key := podKey(md)
	st := newSteps(ctx)
	defer st.log(m.log, "RunPodSandbox steps", id)
	if err := m.reservePod(key, id, md); err != nil {
		if existing, ok := m.retriedPod(err, cfg); ok {
			m.log.Info("RunPodSandbox retried; returning the sandbox already made", "id", existing, "name", md.GetName())
			return existing, nil
		}
		return "", err
	}
	var u undo
	defer u.rollback()
	// A rollback whose delete of the infra container fails (husk-oci
	// killed mid-way, say) keeps the pod, NotReady, with its record and
	// name, as containerd keeps a sandbox it could not clean up: listed, it
	// is removed by kubelet's garbage collection, whose RemovePodSandbox
	// finishes the job (removePod tolerates what the rollback did).
	var leftover error
	u.push(func() {
		if leftover == nil {
			m.set(func() { delete(m.names, key) })
		}
	})

	unlock := m.podLock(id)
	defer unlock()

	slice, cgroup, own, err := m.podCgroupOf(cfg.GetLinux().GetCgroupParent(), id)
	if err != nil {
		return "", err
	}
	img, err := m.images.Resolve(m.cfg.SandboxImage)
	if err != nil {
		return "", fmt.Errorf("sandbox image %q: %w", m.cfg.SandboxImage, err)
	}
	hostNet := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE
	userns, err := podUserns(cfg)
	if err != nil {
		return "", fmt.Errorf("pod %s: %w", md.GetName(), err)
	}
	if userns != nil && m.usernsErr != nil {
		return "", fmt.Errorf("pod %s: user namespaces are not available on this node (%v): %w", md.GetName(), m.usernsErr, ErrFailedPrecondition)
	}
	if userns != nil && !h.Userns {
		return "", fmt.Errorf("pod %s: runtime handler %q does not support user namespaces: %w", md.GetName(), handler, ErrFailedPrecondition)
	}
	p := &Pod{
		ID: id, State: PodCreating, CreatedAt: time.Now().UTC(), Config: cfg, Handler: handler,
		HostNetwork: hostNet, Cgroup: cgroup, Slice: slice, OwnCgroup: own, ShimSocket: m.paths.ShimSocket(id),
	}
	if !hostNet {
		// Recorded before it exists: a crash after this point leaves a
		// record that names the netns to remove.
		p.NetnsPath = m.net.NetnsPath(id)
	}
	dir := m.paths.PodDir(id)
	if userns != nil {
		p.UsernsPath = filepath.Join(dir, "userns")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create pod dir %s: %w", dir, err)
	}
	u.push(func() {
		if leftover == nil {
			os.RemoveAll(dir)
			return
		}
		if err := m.updatePod(p, func() { p.State = PodNotReady; p.NetworkDone = !hostNet }); err != nil {
			m.log.Warn("rollback: record the pod left for removal", "pod", id, "error", err)
		}
	})
	if userns != nil {
		if err := openForMappedRoot(m.cfg.Root, dir); err != nil {
			return "", fmt.Errorf("pod %s: %w", md.GetName(), err)
		}
	}
	if err := m.savePod(p); err != nil {
		return "", err
	}
	m.set(func() { m.pods[id] = p })
	st.mark("record")
	u.push(func() {
		if leftover == nil {
			m.set(func() { delete(m.pods, id) })
		}
	})
	if own {
		u.push(func() { _ = m.removeCgroup(cgroup) })
	}

	// The shim needs only the pod dir: it starts (a Go exec, ~12 ms here)
	// while the netns, files, rootfs and spec are made, and is waited for
	// just before the infra container needs it.
	type launched struct {
		client Shim
		pid    int
		err    error
	}
	shimDone := make(chan launched, 1)
	go func() {
		c, pid, err := m.shims.Launch(ctx, shim.LaunchConfig{
			ShimPath: m.cfg.ShimPath, Runtime: h.Runtime,
			PodID: id, Socket: p.ShimSocket, LogPath: filepath.Join(dir, "shim.log"),
			Debug: m.log.Enabled(ctx, slog.LevelDebug), JSONLog: m.cfg.JSONLog,
		})
		shimDone <- launched{c, pid, err}
	}()
	u.push(func() {
		r := <-shimDone
		shimDone <- r
		if r.err == nil {
			m.set(func() { p.shimStopping = true })
			m.killShim(r.client, p.ShimSocket, r.pid)
		}
	})

	// Network: pin the netns now, wire it in the background.
	type cniResult struct {
		res network.Result
		err error
	}
	var cniDone chan cniResult
	if userns != nil {
		// The netns is made with the user namespace, owned by it.
		u.push(func() { _ = m.net.RemoveNetns(p.NetnsPath) })
		u.push(func() { _ = removeUserns(p.UsernsPath) })
		err := createUserns(p.UsernsPath, userns, !hostNet, func(nsFile string) error {
			_, err := m.net.AdoptNetns(id, nsFile)
			return err
		})
		if err != nil {
			return "", fmt.Errorf("pod %s: %w", md.GetName(), err)
		}
		st.mark("userns")
	}
	if !hostNet {
		if userns == nil {
			path, err := m.net.CreateNetns(id)
			if err != nil {
				return "", fmt.Errorf("pod %s: %w", md.GetName(), err)
			}
			u.push(func() { _ = m.net.RemoveNetns(path) })
			st.mark("netns")
		}
		pn := podNetwork(p)
		cniDone = make(chan cniResult, 1)
		go func() {
			// Beside the steps below, so a span of its own.
			cctx, span := tracer.Start(ctx, "cni-add")
			res, err := m.net.Setup(cctx, pn)
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
			cniDone <- cniResult{res, err}
		}()
		// Whatever happens next, DEL runs if ADD may have done anything.
		u.push(func() {
			r := <-cniDone
			cniDone <- r
			if r.err == nil {
				if err := m.net.Teardown(context.WithoutCancel(ctx), pn); err != nil {
					m.log.Warn("rollback: CNI teardown", "pod", id, "error", err)
				}
			}
		})
	}

	files, err := m.writePodFiles(p, nil)
	if err != nil {
		return "", err
	}
	if err := m.mountShm(p, files.Shm); err != nil {
		return "", err
	}
	// Only the pod's own: a host-IPC pod's files.Shm is the node's
	// /dev/shm, which a rollback must never take down.
	u.push(func() {
		if p.ShmMounted {
			_ = mount.Unmount(files.Shm)
		}
	})
	st.mark("files+shm")

	rootfs, err := m.images.Mount(img, dir, true, p.idmap())
	if err != nil {
		return "", fmt.Errorf("pod %s: mount sandbox image: %w", md.GetName(), err)
	}
	u.push(func() { _ = m.images.Unmount(dir) })
	m.set(func() { p.Layers = img.Layers })
	st.mark("rootfs")
	spec, err := infraSpec(p, rootfs, files, m.cfg.MinOOMScoreAdj, userns)
	if err != nil {
		return "", err
	}
	if img.Pinned {
		// Our own pause is a native static binary: it never makes a
		// syscall of another ABI, so its filter need not cover one.
		nativeArchOnly(spec)
	}
	if h.SpecVersion != "" {
		spec.Version = h.SpecVersion
	}
	if err := atomicfile.WriteJSON(filepath.Join(dir, "config.json"), spec); err != nil {
		return "", err
	}
	sh := <-shimDone
	shimDone <- sh
	if sh.err != nil {
		return "", sh.err
	}
	client := sh.client
	m.set(func() { p.ShimPid = sh.pid })
	m.watchShim(p)
	st.mark("shim")
	// Undone even when the run fails, as a container's create is.
	u.push(func() {
		if leftover = m.deleteInShim(context.WithoutCancel(ctx), p, id); leftover != nil {
			m.log.Warn("rollback: pod left NotReady for removal", "pod", id, "error", leftover)
		}
	})
	pid, err := client.Run(ctx, id, dir, "", filepath.Join(dir, "exit.json"))
	if err != nil {
		return "", fmt.Errorf("pod %s: start infra container: %w", md.GetName(), err)
	}
	st.mark("infra")
	m.set(func() { p.InfraPid = pid })

	if cniDone != nil {
		r := <-cniDone
		cniDone <- r
		if r.err != nil {
			return "", fmt.Errorf("pod %s: set up network: %w", md.GetName(), r.err)
		}
		m.set(func() { p.IPs = r.res.IPs; p.NetworkDone = true })
		st.mark("cni-wait")
		if _, err := m.writePodFiles(p, r.res.IPs); err != nil {
			return "", err
		}
	}
	// The plugins see the pod made, before anyone else can see it.
	pv := m.viewPod(p)
	if err := m.plugins.RunPod(ctx, pv); err != nil {
		return "", fmt.Errorf("pod %s: NRI: %w", md.GetName(), err)
	}
	u.push(func() { m.plugins.RemovePod(context.WithoutCancel(ctx), pv) })
	st.mark("nri")
	if err := m.updatePod(p, func() { p.State = PodReady }); err != nil {
		return "", err
	}
	st.mark("save")
	u.commit()
	m.emitPod(p, evCreated, evStarted)
	m.watchExit(p, id)
	m.log.Info("pod sandbox ready", "id", id, "name", md.GetName(), "namespace", md.GetNamespace(), "ips", p.IPs)
	return id, nil
}

// reservePod refuses a name already taken. kubelet makes a new attempt
// only once the previous sandbox is not ready, so a ready sibling with the
// same name, namespace and uid means two pods would share one identity.
func (m *Manager) reservePod(key, id string, md *runtimeapi.PodSandboxMetadata) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if other, ok := m.names[key]; ok {
		return &nameTaken{id: other, err: fmt.Errorf("pod sandbox name %s/%s (uid %s, attempt %d) is already used by sandbox %s: %w",
			md.GetNamespace(), md.GetName(), md.GetUid(), md.GetAttempt(), other, ErrAlreadyExists)}
	}
	for _, p := range m.pods {
		om := p.Config.GetMetadata()
		if p.State != PodNotReady && om.GetName() == md.GetName() && om.GetNamespace() == md.GetNamespace() && om.GetUid() == md.GetUid() {
			return fmt.Errorf("pod %s/%s (uid %s) still runs as sandbox %s (attempt %d); stop it before attempt %d: %w",
				md.GetNamespace(), md.GetName(), md.GetUid(), p.ID, om.GetAttempt(), md.GetAttempt(), ErrAlreadyExists)
		}
	}
	m.names[key] = id
	return nil
}

// nameTaken is the error of a name already reserved, naming the holder.
type nameTaken struct {
	id  string
	err error
}

func (e *nameTaken) Error() string { return e.err.Error() }
func (e *nameTaken) Unwrap() error { return e.err }

// retriedPod recognizes kubelet retrying a RunPodSandbox that timed out on
// its side: the same name, attempt and config as a sandbox that is being
// made or is ready. It waits for that one to finish and returns it, so the
// retry succeeds instead of failing on the reserved name forever.
func (m *Manager) retriedPod(err error, cfg *runtimeapi.PodSandboxConfig) (string, bool) {
	var taken *nameTaken
	if !errors.As(err, &taken) {
		return "", false
	}
	unlock := m.podLock(taken.id) // held by a RunPodSandbox still at work
	unlock()
	m.mu.RLock()
	defer m.mu.RUnlock()
	p, ok := m.pods[taken.id]
	if !ok || p.State != PodReady || !proto.Equal(p.Config, cfg) {
		return "", false
	}
	return p.ID, true
}

func podNetwork(p *Pod) network.PodNetwork {
	md := p.Config.GetMetadata()
	pn := network.PodNetwork{PodID: p.ID, Name: md.GetName(), Namespace: md.GetNamespace(), UID: md.GetUid(), NetnsPath: p.NetnsPath}
	for _, pm := range p.Config.GetPortMappings() {
		if pm.GetHostPort() <= 0 {
			continue // no host port: nothing for portmap to do
		}
		proto := "tcp"
		switch pm.GetProtocol() {
		case runtimeapi.Protocol_UDP:
			proto = "udp"
		case runtimeapi.Protocol_SCTP:
			proto = "sctp"
		}
		pn.PortMappings = append(pn.PortMappings, network.PortMapping{
			HostPort: pm.GetHostPort(), ContainerPort: pm.GetContainerPort(), Protocol: proto, HostIP: pm.GetHostIp(),
		})
	}
	return pn
}

// killShim is the rollback of a shim launch: ask it to go, then make sure.
func (m *Manager) killShim(c Shim, socket string, pid int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Shutdown(ctx); err != nil && pid > 0 {
		_ = syscallKill(pid)
	}
	_ = os.Remove(socket)
}
