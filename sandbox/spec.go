package sandbox

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The spec builders are pure functions of the CRI config, the image config
// and the pod (namespace paths, cgroup, files), so they are unit-tested
// without root. The shim turns the spec into a libcontainer config.

// defaultCaps is the capability set containerd and CRI-O give a container
// that asks for nothing more.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// Paths a container must not read or write, as in containerd's defaults.
var (
	maskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// baseMounts are the kernel file systems every container gets.
func baseMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}

// infraMounts are the infra container's: the kernel file systems the
// pause and libcontainer's init need, and no more. The pause only waits
// for signals; init needs /proc (AppArmor's attr files, the masked and
// read-only paths) and /dev (it reopens stdio on /dev/null). sysfs, the
// cgroup file system, devpts and mqueue serve only processes inside the
// infra's mount namespace, which no other container shares, and the
// cgroup one alone is a tmpfs and two mounts per controller on a v1
// host: 19 of the infra's 44 mount calls here. containerd's sandbox spec leaves out the
// cgroup file system too.
func infraMounts(shm string) []specs.Mount {
	base := baseMounts()
	return []specs.Mount{base[0], base[1], bind(shm, "/dev/shm", false)}
}

func bind(src, dst string, ro bool) specs.Mount { return bindProp(src, dst, ro, "rprivate") }

func bindProp(src, dst string, ro bool, prop string) specs.Mount {
	opts := []string{"rbind", prop}
	if ro {
		opts = append(opts, "ro")
	}
	return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: opts}
}

// podFiles are the files a pod shares with its containers.
type podFiles struct {
	Hostname, Hosts, ResolvConf, Shm string
}

// infraSpec builds the spec of the pod's infra container. userns is the
// pod's user namespace mapping, nil without one.
func infraSpec(p *Pod, rootfs string, files podFiles, oomFloor int, userns *usernsMapping) (*specs.Spec, error) {
	cfg := p.Config
	sec := cfg.GetLinux().GetSecurityContext()
	nsOpts := sec.GetNamespaceOptions()
	s := &specs.Spec{
		Version:  specs.Version,
		Root:     &specs.Root{Path: rootfs, Readonly: true},
		Hostname: podHostname(cfg),
		Process: &specs.Process{
			Args: []string{"/pause"},
			Env:  []string{defaultPath},
			Cwd:  "/",
			// The pause needs no privilege at all.
			User:            specs.User{UID: 65535, GID: 65535},
			NoNewPrivileges: true,
			Capabilities:    &specs.LinuxCapabilities{},
			OOMScoreAdj:     intPtr(clampOOM(-998, oomFloor)),
		},
		Mounts: infraMounts(files.Shm),
		Linux: &specs.Linux{
			CgroupsPath:   cgroupsPath(p, p.ID),
			Sysctl:        cfg.GetLinux().GetSysctls(),
			MaskedPaths:   maskedPaths,
			ReadonlyPaths: readonlyPaths,
			Resources:     &specs.LinuxResources{},
		},
	}
	if nsOpts.GetNetwork() == runtimeapi.NamespaceMode_NODE {
		s.Hostname = ""
	}
	if userns != nil {
		// Joined by path, before libcontainer makes the infra's other
		// namespaces, which the user namespace therefore owns. libcontainer
		// reads the mapping from it.
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: p.UsernsPath})
		if userns.Size <= uint32(s.Process.User.UID) {
			// A short range leaves 65535 unmapped; the namespace's root
			// is no one on the host anyway.
			s.Process.User = specs.User{}
		}
	}
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.MountNamespace})
	if nsOpts.GetNetwork() != runtimeapi.NamespaceMode_NODE {
		s.Linux.Namespaces = append(s.Linux.Namespaces,
			specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: p.NetnsPath},
			specs.LinuxNamespace{Type: specs.UTSNamespace})
	}
	if nsOpts.GetIpc() != runtimeapi.NamespaceMode_NODE {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.IPCNamespace})
	}
	if nsOpts.GetPid() != runtimeapi.NamespaceMode_NODE {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace})
	}
	if err := applySeccomp(s, sec.GetSeccomp()); err != nil {
		return nil, fmt.Errorf("pod %s: %w", cfg.GetMetadata().GetName(), err)
	}
	// The infra gets the pod's AppArmor profile, and on an AppArmor host
	// the default one when the pod names none, as containerd and CRI-O
	// confine their sandbox containers.
	aa := sec.GetApparmor()
	if aa == nil && appArmorEnabled() {
		aa = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	}
	if err := applyAppArmor(s, aa, sec.GetPrivileged()); err != nil {
		return nil, fmt.Errorf("pod %s: %w", cfg.GetMetadata().GetName(), err)
	}
	return s, nil
}

// podHostname is the pod's hostname: the one kubelet gives, else the
// node's, as containerd and CRI-O do (a pod name may be longer than a
// hostname may be).
func podHostname(cfg *runtimeapi.PodSandboxConfig) string {
	if h := cfg.GetHostname(); h != "" {
		return h
	}
	h, _ := os.Hostname()
	return h
}

// imageConfig is the part of an image's config a container spec uses.
type imageConfig struct {
	Env        []string
	Entrypoint []string
	Cmd        []string
	WorkingDir string
	User       string
	StopSignal string
}

// containerSpec builds an app container's spec. infraPid's namespaces are
// joined; user is the resolved uid/gid.
// nsPids are the processes whose namespaces a container joins: the pod's
// infra process, and for NamespaceMode TARGET (an ephemeral debug
// container) the target container's init.
type nsPids struct {
	Infra, Target int
}

func containerSpec(p *Pod, c *Container, img imageConfig, rootfs string, user specs.User, files podFiles, pids nsPids, oomFloor int) (*specs.Spec, error) {
	cfg := c.Config
	args, err := commandLine(cfg, img)
	if err != nil {
		return nil, err
	}
	lin := cfg.GetLinux()
	sec := lin.GetSecurityContext()
	privileged := sec.GetPrivileged()
	if privileged && !p.Config.GetLinux().GetSecurityContext().GetPrivileged() {
		return nil, fmt.Errorf("container %q is privileged but its pod sandbox is not: %w", cfg.GetMetadata().GetName(), ErrInvalid)
	}
	caps := capabilities(sec)
	if privileged {
		all, err := allCaps()
		if err != nil {
			return nil, err
		}
		caps = all
	}
	proc := &specs.Process{
		Args:            args,
		Env:             mergeEnv(img.Env, cfg.GetEnvs()),
		Cwd:             firstNonEmpty(cfg.GetWorkingDir(), img.WorkingDir, "/"),
		User:            user,
		NoNewPrivileges: sec.GetNoNewPrivs(),
		Capabilities:    &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
		Terminal:        cfg.GetTty(), // the shim gives it a pty, for Attach
	}
	if adj := lin.GetResources().GetOomScoreAdj(); adj != 0 {
		proc.OOMScoreAdj = intPtr(clampOOM(int(adj), oomFloor))
	} else if oomFloor > 0 {
		proc.OOMScoreAdj = intPtr(oomFloor)
	}
	s := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: rootfs, Readonly: sec.GetReadonlyRootfs()},
		Process: proc,
		Mounts:  baseMounts(),
		Linux: &specs.Linux{
			CgroupsPath:       cgroupsPath(p, c.ID),
			Sysctl:            p.Config.GetLinux().GetSysctls(),
			MaskedPaths:       orDefault(sec.GetMaskedPaths(), maskedPaths),
			ReadonlyPaths:     orDefault(sec.GetReadonlyPaths(), readonlyPaths),
			Resources:         resources(lin.GetResources()),
			RootfsPropagation: rootfsPropagation(cfg.GetMounts()),
		},
		Annotations: cfg.GetAnnotations(),
	}
	if privileged {
		if err := privilege(s); err != nil {
			return nil, err
		}
	}
	nodes, rules, err := criDevices(cfg.GetDevices())
	if err != nil {
		return nil, err
	}
	s.Linux.Devices = append(s.Linux.Devices, nodes...)
	s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, rules...)
	// Pod files first, so a CRI mount of the same path replaces them.
	own := map[string]bool{}
	for _, m := range cfg.GetMounts() {
		own[m.GetContainerPath()] = true
	}
	for _, f := range []struct{ src, dst string }{
		{files.Hostname, "/etc/hostname"}, {files.Hosts, "/etc/hosts"},
		{files.ResolvConf, "/etc/resolv.conf"}, {files.Shm, "/dev/shm"},
	} {
		if f.src != "" && !own[f.dst] {
			s.Mounts = append(s.Mounts, bind(f.src, f.dst, false))
		}
	}
	for _, m := range cfg.GetMounts() {
		if !filepath.IsAbs(m.GetContainerPath()) {
			return nil, fmt.Errorf("mount container_path %q is not absolute: %w", m.GetContainerPath(), ErrInvalid)
		}
		if m.GetHostPath() == "" {
			return nil, fmt.Errorf("mount to %q has no host_path: %w", m.GetContainerPath(), ErrInvalid)
		}
		prop, err := propagationOption(m, privileged)
		if err != nil {
			return nil, err
		}
		// Image volumes (KEP-4639) are read-only (kubelet asks so) and
		// executable: critest v1.37 runs a binary from one, as containerd
		// 2.x and CRI-O allow (husk mounted them noexec before).
		bm := bindProp(m.GetHostPath(), m.GetContainerPath(), m.GetReadonly(), prop)
		if m.GetRecursiveReadOnly() {
			// CRI: recursive read-only needs readonly and private
			// propagation, or submounts could still be written.
			if !m.GetReadonly() || prop != "rprivate" {
				return nil, fmt.Errorf("mount %s: recursive_read_only needs readonly and private propagation: %w", m.GetContainerPath(), ErrInvalid)
			}
			// runc makes every submount read-only with mount_setattr.
			bm.Options = append(bm.Options, "rro")
		}
		if len(m.GetUidMappings()) > 0 || len(m.GetGidMappings()) > 0 {
			// kubelet asks for an idmapped bind mount (volumes of a pod
			// with hostUsers: false); runc makes it with mount_setattr.
			bm.UIDMappings = idMappings(m.GetUidMappings())
			bm.GIDMappings = idMappings(m.GetGidMappings())
		}
		s.Mounts = append(s.Mounts, bm)
	}
	ns := sec.GetNamespaceOptions()
	join := func(t specs.LinuxNamespaceType, name string) specs.LinuxNamespace {
		return specs.LinuxNamespace{Type: t, Path: fmt.Sprintf("/proc/%d/ns/%s", pids.Infra, name)}
	}
	if p.UsernsPath != "" {
		// Every container of the pod shares its user namespace (mode
		// POD, the only one husk accepts). Through /proc/PID, libcontainer
		// reads the mapping directly rather than by forking into it.
		s.Linux.Namespaces = append(s.Linux.Namespaces, join(specs.UserNamespace, "user"))
	}
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.MountNamespace})
	// Network, UTS and IPC are the pod's: a container shares whatever its
	// pod has, even when its own options say nothing (their zero value is
	// POD), as it does with containerd, which joins the infra's namespaces.
	podNS := p.Config.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if !p.HostNetwork && ns.GetNetwork() != runtimeapi.NamespaceMode_NODE {
		// The pinned netns file outlives any pid, so it is joined by path.
		s.Linux.Namespaces = append(s.Linux.Namespaces,
			specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: p.NetnsPath},
			join(specs.UTSNamespace, "uts"))
	}
	if podNS.GetIpc() != runtimeapi.NamespaceMode_NODE && ns.GetIpc() != runtimeapi.NamespaceMode_NODE {
		s.Linux.Namespaces = append(s.Linux.Namespaces, join(specs.IPCNamespace, "ipc"))
	}
	switch ns.GetPid() {
	case runtimeapi.NamespaceMode_POD:
		s.Linux.Namespaces = append(s.Linux.Namespaces, join(specs.PIDNamespace, "pid"))
	case runtimeapi.NamespaceMode_TARGET:
		if pids.Target <= 0 {
			return nil, fmt.Errorf("container %q: pid namespace target %q is not running: %w", cfg.GetMetadata().GetName(), ns.GetTargetId(), ErrFailedPrecondition)
		}
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: fmt.Sprintf("/proc/%d/ns/pid", pids.Target)})
	case runtimeapi.NamespaceMode_NODE:
	default:
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace})
	}
	// A privileged container runs unconfined whatever profile it names, as
	// with containerd and CRI-O.
	if !privileged {
		if err := applySeccomp(s, sec.GetSeccomp()); err != nil {
			return nil, fmt.Errorf("container %q: %w", cfg.GetMetadata().GetName(), err)
		}
	}
	if err := applyAppArmor(s, sec.GetApparmor(), privileged); err != nil {
		return nil, fmt.Errorf("container %q: %w", cfg.GetMetadata().GetName(), err)
	}
	return s, nil
}

// privilege gives a container what Kubernetes' privileged means: every
// host device and access to it, no masked or read-only /proc paths, and
// writable /sys and cgroup file systems.
func privilege(s *specs.Spec) error {
	devs, err := hostDevices()
	if err != nil {
		return err
	}
	s.Linux.Devices = devs
	s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
	for i, m := range s.Mounts {
		if m.Destination == "/sys" || m.Destination == "/sys/fs/cgroup" {
			s.Mounts[i].Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "ro" })
		}
	}
	return nil
}

// commandLine merges command and args the way Kubernetes documents: a
// command replaces the image's entrypoint and drops its cmd; args replace
// the image's cmd.
func commandLine(cfg *runtimeapi.ContainerConfig, img imageConfig) ([]string, error) {
	var args []string
	switch {
	case len(cfg.GetCommand()) > 0:
		args = append(append(args, cfg.GetCommand()...), cfg.GetArgs()...)
	case len(cfg.GetArgs()) > 0:
		args = append(append(args, img.Entrypoint...), cfg.GetArgs()...)
	default:
		args = append(append(args, img.Entrypoint...), img.Cmd...)
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("container %q: no command given and the image has no entrypoint or cmd: %w", cfg.GetMetadata().GetName(), ErrInvalid)
	}
	return args, nil
}

// mergeEnv lays the CRI env over the image's; a key set in both takes the
// CRI value, in the image's position.
func mergeEnv(image []string, kvs []*runtimeapi.KeyValue) []string {
	out := append([]string(nil), image...)
	idx := map[string]int{}
	for i, e := range out {
		k, _, _ := strings.Cut(e, "=")
		idx[k] = i
	}
	for _, kv := range kvs {
		e := kv.GetKey() + "=" + string(kv.GetValue())
		if i, ok := idx[kv.GetKey()]; ok {
			out[i] = e
			continue
		}
		idx[kv.GetKey()] = len(out)
		out = append(out, e)
	}
	if _, ok := idx["PATH"]; !ok {
		out = append([]string{defaultPath}, out...)
	}
	return out
}

func capabilities(sec *runtimeapi.LinuxContainerSecurityContext) []string {
	set := map[string]bool{}
	for _, c := range defaultCaps {
		set[c] = true
	}
	norm := func(c string) string {
		c = strings.ToUpper(c)
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		return c
	}
	for _, c := range sec.GetCapabilities().GetDropCapabilities() {
		if strings.EqualFold(c, "ALL") {
			clear(set)
			continue
		}
		delete(set, norm(c))
	}
	for _, c := range sec.GetCapabilities().GetAddCapabilities() {
		set[norm(c)] = true
	}
	out := make([]string, 0, len(set))
	for _, c := range defaultCaps {
		if set[c] {
			out = append(out, c)
			delete(set, c)
		}
	}
	for c := range set {
		out = append(out, c)
	}
	return out
}

func resources(r *runtimeapi.LinuxContainerResources) *specs.LinuxResources {
	out := &specs.LinuxResources{}
	if r == nil {
		return out
	}
	cpu := &specs.LinuxCPU{}
	if v := r.GetCpuShares(); v > 0 {
		u := uint64(v)
		cpu.Shares = &u
	}
	if v := r.GetCpuQuota(); v > 0 {
		cpu.Quota = &v
	}
	if v := r.GetCpuPeriod(); v > 0 {
		u := uint64(v)
		cpu.Period = &u
	}
	cpu.Cpus = r.GetCpusetCpus()
	cpu.Mems = r.GetCpusetMems()
	out.CPU = cpu
	if v := r.GetMemoryLimitInBytes(); v > 0 {
		out.Memory = &specs.LinuxMemory{Limit: &v}
		if sw := r.GetMemorySwapLimitInBytes(); sw > 0 {
			out.Memory.Swap = &sw
		}
	}
	// kubelet sends a limit (often 0) for every page size the machine has;
	// the Manager's fitResources drops them where the host has no hugetlb
	// controller a v1 or v2 manager can write to.
	for _, h := range r.GetHugepageLimits() {
		out.HugepageLimits = append(out.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: h.GetPageSize(), Limit: h.GetLimit()})
	}
	out.Unified = maps.Clone(r.GetUnified())
	return out
}

// clampOOM keeps oom_score_adj at or above what the host lets us set: with
// no CAP_SYS_RESOURCE a lower value than our own fails every start (the
// same rule as containerd's restrict_oom_score_adj).
func clampOOM(want, floor int) int {
	if want < floor {
		return floor
	}
	return want
}

func intPtr(i int) *int { return &i }

// orDefault takes kubelet's list when it sends one (it always does, with
// its own defaults or what the pod asked for), else ours.
func orDefault(given, def []string) []string {
	if given != nil {
		return given
	}
	return def
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// idMappings converts CRI id mappings to the spec's.
func idMappings(in []*runtimeapi.IDMapping) []specs.LinuxIDMapping {
	out := make([]specs.LinuxIDMapping, 0, len(in))
	for _, m := range in {
		out = append(out, specs.LinuxIDMapping{ContainerID: m.GetContainerId(), HostID: m.GetHostId(), Size: m.GetLength()})
	}
	return out
}
