package podrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/husk-runtime/husk/criclient"
	"github.com/husk-runtime/husk/kubepod"
	"github.com/moby/sys/mountinfo"
	"google.golang.org/protobuf/encoding/protojson"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// seccompRoot is where Plan has Localhost seccomp profiles found
// (kubelet's default root).
const seccompRoot = "/var/lib/kubelet/seccomp"

// Configs returns the CRI configs the pod sandboxID (uid) was made from,
// for `husk pod generate`: those of its record when husk pod run made it,
// else those the runtime reports in its verbose status (containerd does,
// as the "config" of its "info"; husk's daemon does not). The containers
// come in the order they were created, init containers and sidecars
// first. A stopped pod has its configs all the same.
func (r *Runner) Configs(ctx context.Context, sandboxID, uid string) (*runtimeapi.PodSandboxConfig, []kubepod.GenContainer, error) {
	if uid != "" && filepath.Base(uid) == uid && uid != "." && uid != ".." {
		rec, err := r.readRecord(uid)
		switch {
		case err == nil:
			return recordConfigs(rec, sandboxID)
		case !errors.Is(err, os.ErrNotExist):
			return nil, nil, err
		}
	}
	return r.runtimeConfigs(ctx, sandboxID)
}

// recordConfigs reads the configs of a pod record.
func recordConfigs(rec *podRecord, sandboxID string) (*runtimeapi.PodSandboxConfig, []kubepod.GenContainer, error) {
	pod := rec.Namespace + "/" + rec.Name
	if rec.SandboxID != "" && sandboxID != "" && rec.SandboxID != sandboxID {
		return nil, nil, fmt.Errorf("record of pod %s names sandbox %s, not %s", pod, criclient.ShortID(rec.SandboxID), criclient.ShortID(sandboxID))
	}
	if len(rec.Sandbox) == 0 {
		return nil, nil, fmt.Errorf("record of pod %s holds no configs (written by an older husk pod run)", pod)
	}
	// Unknown fields are a newer husk's: what this one knows still
	// makes a pod.
	un := protojson.UnmarshalOptions{DiscardUnknown: true}
	sb := &runtimeapi.PodSandboxConfig{}
	if err := un.Unmarshal(rec.Sandbox, sb); err != nil {
		return nil, nil, fmt.Errorf("record of pod %s: sandbox: %w", pod, err)
	}
	var out []kubepod.GenContainer
	for _, c := range rec.Containers {
		cfg := &runtimeapi.ContainerConfig{}
		if err := un.Unmarshal(c.Config, cfg); err != nil {
			return nil, nil, fmt.Errorf("record of pod %s: container %s: config: %w", pod, c.Name, err)
		}
		// The record's config is the first attempt's before the image was
		// resolved: its image is the manifest's.
		out = append(out, kubepod.GenContainer{Kind: c.Kind, Config: cfg, Image: cfg.GetImage().GetUserSpecifiedImage(), Supervision: c.Supervision})
	}
	return sb, out, nil
}

// runtimeConfigs reads a pod's configs off the runtime's verbose status.
func (r *Runner) runtimeConfigs(ctx context.Context, sandboxID string) (*runtimeapi.PodSandboxConfig, []kubepod.GenContainer, error) {
	cctx, cancel := r.ctx(ctx)
	st, err := r.Runtime.PodSandboxStatus(cctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sandboxID, Verbose: true})
	cancel()
	if err != nil {
		return nil, nil, criclient.Wrap(err, "status of pod %s", criclient.ShortID(sandboxID))
	}
	md := st.GetStatus().GetMetadata()
	pod := md.GetNamespace() + "/" + md.GetName()
	sb := &runtimeapi.PodSandboxConfig{}
	if !verboseConfig(st.Info, sb) || sb.GetMetadata().GetName() == "" {
		return nil, nil, fmt.Errorf("pod %s was not started by husk pod run (it has no record in %s) and the runtime does not report its configs",
			pod, filepath.Join(r.StateDir, "pods"))
	}
	cctx, cancel = r.ctx(ctx)
	list, err := r.Runtime.ListContainers(cctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: sandboxID}})
	cancel()
	if err != nil {
		return nil, nil, criclient.Wrap(err, "list containers of pod %s", pod)
	}
	// One container per name: its latest attempt, ordered by when the
	// first attempt was made (init containers run first).
	type ctr struct {
		c       *runtimeapi.Container
		created int64
	}
	byName := map[string]*ctr{}
	var names []string
	for _, c := range list.Containers {
		n := c.GetMetadata().GetName()
		seen, ok := byName[n]
		if !ok {
			byName[n] = &ctr{c, c.CreatedAt}
			names = append(names, n)
			continue
		}
		seen.created = min(seen.created, c.CreatedAt)
		if c.GetMetadata().GetAttempt() > seen.c.GetMetadata().GetAttempt() {
			seen.c = c
		}
	}
	var out []kubepod.GenContainer
	for _, n := range names {
		c := byName[n].c
		cctx, cancel := r.ctx(ctx)
		cs, err := r.Runtime.ContainerStatus(cctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.Id, Verbose: true})
		cancel()
		if err != nil {
			return nil, nil, criclient.Wrap(err, "status of container %s of pod %s", n, pod)
		}
		cfg := &runtimeapi.ContainerConfig{}
		if !verboseConfig(cs.Info, cfg) || cfg.GetMetadata().GetName() == "" || cfg.GetImage() == nil {
			return nil, nil, fmt.Errorf("pod %s was not started by husk pod run (it has no record in %s) and the runtime does not report the config of its container %s",
				pod, filepath.Join(r.StateDir, "pods"), n)
		}
		kind := cfg.Labels[kubepod.LabelContainerKind]
		if kind == "" {
			kind = "app" // kubelet's labels do not tell init containers
		}
		image := cfg.GetImage().GetUserSpecifiedImage()
		if image == "" {
			image = c.GetImage().GetUserSpecifiedImage()
		}
		if image == "" {
			image = c.GetImage().GetImage()
		}
		out = append(out, kubepod.GenContainer{Kind: kind, Config: cfg, Image: image})
	}
	rank := func(kind string) int {
		if kind == "app" {
			return 1
		}
		return 0
	}
	sort.SliceStable(out, func(i, j int) bool {
		if ri, rj := rank(out[i].Kind), rank(out[j].Kind); ri != rj {
			return ri < rj
		}
		return byName[out[i].Config.Metadata.Name].created < byName[out[j].Config.Metadata.Name].created
	})
	return sb, out, nil
}

// verboseConfig decodes the "config" of a verbose status's "info" into
// m, as containerd writes it: encoding/json of the CRI's Go struct.
func verboseConfig(info map[string]string, m any) bool {
	var v struct {
		Config json.RawMessage `json:"config"`
	}
	if json.Unmarshal([]byte(info["info"]), &v) != nil || len(v.Config) == 0 {
		return false
	}
	return json.Unmarshal(v.Config, m) == nil
}

// GenerateOptions are the kubepod.GenOptions of pod uid: the Options Plan
// translated it with (as far as its configs depend on them), and what
// husk pod run left on the node for it: its volume dirs' fsGroup, its
// tmpfs volumes.
func (r *Runner) GenerateOptions(uid string) (kubepod.GenOptions, error) {
	o := kubepod.GenOptions{MemoryCapacity: memoryCapacity(), SeccompRoot: seccompRoot}
	// The node's resolv.conf as it is now: if it changed since, the DNS
	// config is written out whole (dnsPolicy None) rather than lost.
	if dns, err := HostDNS(); err == nil {
		o.HostDNS = dns
	}
	if uid == "" || filepath.Base(uid) != uid || uid == "." || uid == ".." {
		return o, nil
	}
	o.VolumeDir = filepath.Join(r.podDir(uid), "volumes")
	entries, err := os.ReadDir(o.VolumeDir)
	if errors.Is(err, os.ErrNotExist) {
		return o, nil
	}
	if err != nil {
		return o, fmt.Errorf("read volumes of pod %s: %w", uid, err)
	}
	// prepareHostPaths gives each volume dir the fsGroup, set-group-ID.
	for _, e := range entries {
		fi, err := os.Stat(filepath.Join(o.VolumeDir, e.Name()))
		if err != nil || !fi.IsDir() || fi.Mode()&os.ModeSetgid == 0 {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			o.FSGroup = new(int64(st.Gid))
			break
		}
	}
	if o.MemoryVolumes, err = memoryVolumes(o.VolumeDir, o.MemoryCapacity); err != nil {
		return o, fmt.Errorf("volumes of pod %s: %w", uid, err)
	}
	return o, nil
}

// memoryVolumes finds the tmpfs mounts on the volume dirs (mountMemoryDir)
// with their size, 0 when it is the kernel's default (half the memory).
func memoryVolumes(dir string, memory int64) (map[string]int64, error) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, err
	}
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(real))
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	out := map[string]int64{}
	for _, m := range mounts {
		if m.FSType != "tmpfs" || filepath.Dir(m.Mountpoint) != real {
			continue
		}
		size := tmpfsSize(m.VFSOptions)
		const page = 4096
		if d := size - memory/2; memory > 0 && d > -page && d < page {
			size = 0
		}
		out[filepath.Base(m.Mountpoint)] = size
	}
	return out, nil
}

// tmpfsSize reads size=N[kmg] of a tmpfs's options, in bytes.
func tmpfsSize(opts string) int64 {
	for _, o := range strings.Split(opts, ",") {
		v, ok := strings.CutPrefix(o, "size=")
		if !ok || v == "" {
			continue
		}
		mult := int64(1)
		switch v[len(v)-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			v = v[:len(v)-1]
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0
		}
		return n * mult
	}
	return 0
}
