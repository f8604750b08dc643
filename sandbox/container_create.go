package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/distribution/reference"
	"github.com/husk-runtime/husk/atomicfile"
	"github.com/husk-runtime/husk/image"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func containerKey(podID string, md *runtimeapi.ContainerMetadata) string {
	return fmt.Sprintf("ctr/%s/%s/%d", podID, md.GetName(), md.GetAttempt())
}

// CreateContainer makes a container in a ready pod: rootfs from the image,
// the spec, and the shim creates it (its init waits for StartContainer).
func (m *Manager) CreateContainer(ctx context.Context, podID string, cfg *runtimeapi.ContainerConfig, podCfg *runtimeapi.PodSandboxConfig) (string, error) {
	md := cfg.GetMetadata()
	if md == nil || md.GetName() == "" {
		return "", fmt.Errorf("container config needs metadata with a name: %w", ErrInvalid)
	}
	if cfg.GetImage().GetImage() == "" {
		return "", fmt.Errorf("container %q: no image given: %w", md.GetName(), ErrInvalid)
	}
	p, err := m.pod(podID)
	if err != nil {
		return "", err
	}
	if m.podState(p) == PodCreating {
		// Its RunPodSandbox is still at work (an NRI plugin's hook, say):
		// waiting on its lock would make a container in a pod not yet
		// returned to anyone.
		return "", fmt.Errorf("pod sandbox %s is still being created: %w", p.ID, ErrFailedPrecondition)
	}
	defer m.plugins.BlockSync()()
	unlock, live := m.lockLive(p)
	defer unlock()
	if !live {
		return "", fmt.Errorf("pod sandbox %s was removed: %w", p.ID, ErrNotFound)
	}
	m.refreshInfra(p)
	if v := m.viewPod(p); !v.Ready {
		return "", fmt.Errorf("pod sandbox %s is not ready (state %s): %w", p.ID, v.State, ErrFailedPrecondition)
	}
	for _, mnt := range cfg.GetMounts() {
		// CRI: an image volume is read-only; kubelet always asks so (the
		// image volume plugin mounts read-only), and critest v1.37 checks
		// the runtime refuses otherwise.
		if mnt.GetImage().GetImage() != "" && !mnt.GetReadonly() {
			return "", fmt.Errorf("container %q: image volume %s: readonly must be true: %w", md.GetName(), mnt.GetContainerPath(), ErrInvalid)
		}
	}
	if h := m.cfg.Handlers[p.Handler]; !h.RecursiveReadOnly {
		// kubelet asks only of handlers whose Status says they can.
		for _, mnt := range cfg.GetMounts() {
			if mnt.GetRecursiveReadOnly() {
				return "", fmt.Errorf("container %q: mount %s: runtime handler %q cannot make recursive read-only mounts: %w",
					md.GetName(), mnt.GetContainerPath(), p.Handler, ErrInvalid)
			}
		}
	}
	id := newID()
	st := newSteps(ctx)
	defer st.log(m.log, "CreateContainer steps", id)
	img, err := m.images.Resolve(cfg.GetImage().GetImage())
	if err != nil {
		return "", fmt.Errorf("container %q: image %q: %w", md.GetName(), cfg.GetImage().GetImage(), err)
	}
	st.mark("image-resolve")

	key := containerKey(p.ID, md)
	m.mu.Lock()
	if other, ok := m.names[key]; ok {
		// kubelet retrying a CreateContainer that timed out on its side
		// gets the container already made (the pod lock we hold means
		// that create has finished).
		if c := m.ctrs[other]; c != nil && c.State != ContainerCreating && proto.Equal(c.Config, cfg) {
			m.mu.Unlock()
			m.log.Info("CreateContainer retried; returning the container already made", "id", other)
			return other, nil
		}
		m.mu.Unlock()
		return "", fmt.Errorf("container name %q (attempt %d) is already used by %s in pod %s: %w", md.GetName(), md.GetAttempt(), other, p.ID, ErrAlreadyExists)
	}
	m.names[key] = id
	m.mu.Unlock()
	var u undo
	defer u.rollback()
	u.push(func() { m.set(func() { delete(m.names, key) }) })

	c := &Container{
		ID: id, PodID: p.ID, State: ContainerCreating, CreatedAt: time.Now().UTC(), Config: cfg,
		ImageRef: cfg.GetImage().GetImage(), ImageID: img.ID, RepoRef: repoRef(img, cfg.GetImage()), ImageName: imageName(img, cfg.GetImage()),
	}
	if lp := cfg.GetLogPath(); lp != "" {
		if dir := p.Config.GetLogDirectory(); dir != "" {
			c.LogPath = filepath.Join(dir, lp)
		} else if filepath.IsAbs(lp) {
			c.LogPath = lp
		}
	}
	dir := m.paths.ContainerDir(p.ID, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create container dir %s: %w", dir, err)
	}
	// A rollback whose delete of what the runtime made fails (husk-oci
	// killed mid-way, say) keeps the dir: its record (state creating)
	// marks the leftover, which removePod sweeps, or the next start's
	// recovery. The memory forgets it, so the name is free for a retry.
	var leftover error
	u.push(func() {
		if leftover == nil {
			os.RemoveAll(dir)
		}
	})
	if p.UsernsPath != "" {
		if err := openForMappedRoot(m.cfg.Root, dir); err != nil {
			return "", fmt.Errorf("container %q: %w", md.GetName(), err)
		}
	}
	if err := m.saveContainer(c); err != nil {
		return "", err
	}
	m.set(func() { m.ctrs[id] = c })
	u.push(func() { m.set(func() { delete(m.ctrs, id) }) })

	rootfs, err := m.images.Mount(img, dir, false, p.idmap())
	if err != nil {
		return "", fmt.Errorf("container %q: mount rootfs: %w", md.GetName(), err)
	}
	u.push(func() { _ = m.images.Unmount(dir) })
	m.set(func() { c.Mounted = true })
	u.push(func() { _ = m.unmountImageVolumes(dir) })
	specCfg, volLayers, volIDs, err := m.mountImageVolumes(cfg, dir, p.idmap())
	if err != nil {
		return "", fmt.Errorf("container %q: %w", md.GetName(), err)
	}
	m.set(func() { c.Layers, c.VolumeImageIDs = append(slices.Clone(img.Layers), volLayers...), volIDs })
	st.mark("record+rootfs")

	user, err := resolveUser(rootfs, cfg.GetLinux().GetSecurityContext(), img.Config.User)
	if err != nil {
		return "", fmt.Errorf("container %q: %w", md.GetName(), err)
	}
	m.set(func() { c.User = user })
	files := m.podFilesOf(p)
	ic := imageConfig{Env: img.Config.Env, Entrypoint: img.Config.Entrypoint, Cmd: img.Config.Cmd,
		WorkingDir: img.Config.WorkingDir, User: img.Config.User, StopSignal: img.Config.StopSignal}
	pids := nsPids{Infra: p.InfraPid}
	if ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions(); ns.GetPid() == runtimeapi.NamespaceMode_TARGET {
		pids.Target = m.targetPid(p.ID, ns.GetTargetId())
	}
	specCtr := *c
	specCtr.Config = specCfg
	spec, err := containerSpec(p, &specCtr, ic, rootfs, user, files, pids, m.cfg.MinOOMScoreAdj)
	if err != nil {
		return "", err
	}
	m.fitResources(spec.Linux.Resources)
	if m.cfg.SeccompNativeArchOnly {
		nativeArchOnly(spec)
	}
	if err := m.cdi.inject(spec, cfg.GetCDIDevices()); err != nil {
		return "", fmt.Errorf("container %q: %w", md.GetName(), err)
	}
	// Apart from "nri": issue 12 measured 1.8 ms in the two together,
	// while NRI's own part is ~10 µs (0.5 µs with no plugin).
	st.mark("cdi")
	pv, cv := m.plugView(p, c)
	if err := m.plugins.CreateContainer(ctx, pv, cv, spec); err != nil {
		return "", fmt.Errorf("container %q: NRI: %w", md.GetName(), err)
	}
	if err := checkAdjusted(spec); err != nil {
		return "", fmt.Errorf("container %q: NRI: %w", md.GetName(), err)
	}
	m.fitResources(spec.Linux.Resources)
	u.push(func() {
		pv, cv := m.plugView(p, c)
		m.plugins.RemoveContainer(context.WithoutCancel(ctx), pv, cv)
	})
	st.mark("nri")
	if h := m.cfg.Handlers[p.Handler]; h.SpecVersion != "" {
		spec.Version = h.SpecVersion
	}
	if err := atomicfile.WriteJSON(filepath.Join(dir, "config.json"), spec); err != nil {
		return "", err
	}
	st.mark("spec")
	if c.LogPath != "" {
		if err := os.MkdirAll(filepath.Dir(c.LogPath), 0o755); err != nil {
			return "", fmt.Errorf("create log dir for %s: %w", c.LogPath, err)
		}
	}
	// Undone even when the create fails: a create cut short (husk-oci
	// killed) can leave libcontainer state and an init at the exec fifo,
	// and the shim's own clean-up of it may have been cut short too.
	u.push(func() {
		if leftover = m.deleteInShim(context.WithoutCancel(ctx), p, id); leftover != nil {
			m.log.Warn("rollback: container left for its pod's removal", "container", id, "error", leftover)
		}
	})
	pid, err := m.shim(p).CreateWithStdin(ctx, id, dir, c.LogPath, filepath.Join(dir, "exit.json"), cfg.GetStdin())
	if err != nil {
		return "", fmt.Errorf("container %q: %w", md.GetName(), notFoundIfMissingCommand(err))
	}
	st.mark("shim-create")
	if err := m.updateContainer(c, func() { c.Pid = pid; c.State = ContainerCreated }); err != nil {
		return "", err
	}
	st.mark("save")
	u.commit()
	m.emitContainer(c, evCreated)
	pv, cv = m.plugView(p, c)
	m.plugins.PostCreateContainer(ctx, pv, cv)
	return id, nil
}

// targetPid is the init pid of a running container of the pod, which an
// ephemeral container shares its PID namespace with; 0 if there is none.
// The shim is that process's parent and has not reaped it while it runs,
// so the pid cannot be reused in the meantime.
func (m *Manager) targetPid(podID, id string) int {
	t, err := m.container(id)
	if err != nil || t.PodID != podID {
		return 0
	}
	m.refreshContainer(t)
	m.mu.RLock()
	defer m.mu.RUnlock()
	if t.State != ContainerRunning {
		return 0
	}
	return t.Pid
}

// imageName is the tag ContainerStatus reports: the one the pod asked for
// (kubelet sends the image id as image and the pod's image as
// user_specified_image) where the image has it, else its first tag. An image
// known under several names (pulled through a mirror under its own name and
// upstream's, or tagged twice) reported whichever came first, and kubelet
// and its node e2e specs compare the status with the pod's image.
func imageName(img image.Image, spec *runtimeapi.ImageSpec) string {
	for _, want := range []string{spec.GetUserSpecifiedImage(), spec.GetImage()} {
		if n := normalizedTag(want); n != "" && slices.Contains(img.RepoTags, n) {
			return n
		}
	}
	if len(img.RepoTags) > 0 {
		return img.RepoTags[0]
	}
	if len(img.RepoDigests) > 0 {
		return img.RepoDigests[0]
	}
	return img.ID
}

// repoRef is the repo digest ContainerStatus reports as image_ref: the one
// in the repository of the name the pod asked for, else the first.
func repoRef(img image.Image, spec *runtimeapi.ImageSpec) string {
	if repo := normalizedRepo(imageName(img, spec)); repo != "" {
		for _, d := range img.RepoDigests {
			if normalizedRepo(d) == repo {
				return d
			}
		}
	}
	if len(img.RepoDigests) > 0 {
		return img.RepoDigests[0]
	}
	return img.ID
}

// normalizedTag is ref as the store names its tags ("busybox" ->
// "docker.io/library/busybox:latest"); "" for a digest, an id or junk.
func normalizedTag(ref string) string {
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ""
	}
	if _, ok := n.(reference.Digested); ok {
		return ""
	}
	return reference.TagNameOnly(n).String()
}

// normalizedRepo is the repository of a tag or digest reference.
func normalizedRepo(ref string) string {
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ""
	}
	return n.Name()
}
