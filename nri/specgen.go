package nri

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/nri/pkg/api"
	nrigen "github.com/containerd/nri/pkg/runtime-tools/generate"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// adjustSpec applies the plugins' merged adjustment to spec in place. On
// error spec may be partly adjusted.
func adjustSpec(spec *specs.Spec, adj *api.ContainerAdjustment) error {
	if adj == nil {
		return nil
	}
	if spec == nil {
		return errors.New("NRI adjustment: no spec to adjust")
	}
	// nrigen writes Process.Rlimits, Linux.Seccomp and (for propagating
	// mounts) Linux.RootfsPropagation without allocating their parents.
	if len(adj.GetRlimits()) > 0 && spec.Process == nil {
		spec.Process = &specs.Process{}
	}
	if (adj.GetLinux().GetSeccompPolicy() != nil || len(adj.GetMounts()) > 0) && spec.Linux == nil {
		spec.Linux = &specs.Linux{}
	}

	g := nrigen.SpecGenerator(&specGen{spec: spec},
		// Without an injector or resolver nrigen silently drops CDI
		// devices and block I/O or RDT classes; a plugin must learn
		// that what it asked for did not happen.
		nrigen.WithCDIDeviceInjector(rejectCDIDevices),
		nrigen.WithBlockIOResolver(func(class string) (*specs.LinuxBlockIO, error) {
			return nil, fmt.Errorf("block I/O class %q: classes are not supported", class)
		}),
		nrigen.WithRdtResolver(func(class string) (*specs.LinuxIntelRdt, error) {
			return nil, fmt.Errorf("RDT class %q: classes are not supported", class)
		}),
	)
	if err := g.Adjust(adj); err != nil {
		return fmt.Errorf("NRI adjustment: %w", err)
	}
	return nil
}

func rejectCDIDevices(_ *specs.Spec, names []string) error {
	if len(names) == 0 {
		return nil
	}
	return fmt.Errorf("CDI devices from NRI plugins are not supported: %s", strings.Join(names, ", "))
}

// specGen is nrigen's underlying generator written directly over a spec:
// runtime-tools' own generator, which nrigen is made for, does not build
// against the runtime-spec we use. Its methods keep runtime-tools'
// semantics, allocating whatever part of the spec they write to.
type specGen struct{ spec *specs.Spec }

var _ nrigen.UnderlyingGenerator = (*specGen)(nil)

func (g *specGen) Spec() *specs.Spec {
	if g.spec == nil {
		g.spec = &specs.Spec{}
	}
	return g.spec
}

func (g *specGen) process() *specs.Process {
	s := g.Spec()
	if s.Process == nil {
		s.Process = &specs.Process{}
	}
	return s.Process
}

func (g *specGen) linux() *specs.Linux {
	s := g.Spec()
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	return s.Linux
}

func (g *specGen) resources() *specs.LinuxResources {
	l := g.linux()
	if l.Resources == nil {
		l.Resources = &specs.LinuxResources{}
	}
	return l.Resources
}

func (g *specGen) cpu() *specs.LinuxCPU {
	r := g.resources()
	if r.CPU == nil {
		r.CPU = &specs.LinuxCPU{}
	}
	return r.CPU
}

func (g *specGen) memory() *specs.LinuxMemory {
	r := g.resources()
	if r.Memory == nil {
		r.Memory = &specs.LinuxMemory{}
	}
	return r.Memory
}

func (g *specGen) hooks() *specs.Hooks {
	s := g.Spec()
	if s.Hooks == nil {
		s.Hooks = &specs.Hooks{}
	}
	return s.Hooks
}

func (g *specGen) AddAnnotation(key, value string) {
	s := g.Spec()
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[key] = value
}

func (g *specGen) RemoveAnnotation(key string) {
	if g.spec != nil {
		delete(g.spec.Annotations, key)
	}
}

func (g *specGen) AddProcessEnv(name, value string) {
	p := g.process()
	entry := name + "=" + value
	if i := slices.IndexFunc(p.Env, func(e string) bool { return strings.HasPrefix(e, name+"=") }); i >= 0 {
		p.Env[i] = entry
		return
	}
	p.Env = append(p.Env, entry)
}

func (g *specGen) ClearProcessEnv() {
	if g.spec != nil && g.spec.Process != nil {
		g.spec.Process.Env = []string{}
	}
}

func (g *specGen) SetProcessArgs(args []string) {
	// A copy, so the spec does not share memory with the plugin's reply.
	g.process().Args = slices.Clone(args)
}

func (g *specGen) SetProcessOOMScoreAdj(adj int) {
	g.process().OOMScoreAdj = &adj
}

func (g *specGen) AddPreStartHook(h specs.Hook) {
	hk := g.hooks()
	hk.Prestart = append(hk.Prestart, h) //nolint:staticcheck // deprecated in OCI, still offered by NRI
}

func (g *specGen) AddPostStartHook(h specs.Hook) {
	hk := g.hooks()
	hk.Poststart = append(hk.Poststart, h)
}

func (g *specGen) AddPostStopHook(h specs.Hook) {
	hk := g.hooks()
	hk.Poststop = append(hk.Poststop, h)
}

func (g *specGen) Mounts() []specs.Mount {
	return g.Spec().Mounts
}

func (g *specGen) AddMount(m specs.Mount) {
	s := g.Spec()
	s.Mounts = append(s.Mounts, m)
}

// RemoveMount removes the first mount on dest only, as runtime-tools does.
func (g *specGen) RemoveMount(dest string) {
	if g.spec == nil {
		return
	}
	if i := slices.IndexFunc(g.spec.Mounts, func(m specs.Mount) bool { return m.Destination == dest }); i >= 0 {
		g.spec.Mounts = slices.Delete(g.spec.Mounts, i, i+1)
	}
}

func (g *specGen) ClearMounts() {
	if g.spec != nil {
		g.spec.Mounts = []specs.Mount{}
	}
}

func (g *specGen) AddDevice(d specs.LinuxDevice) {
	l := g.linux()
	if i := slices.IndexFunc(l.Devices, func(x specs.LinuxDevice) bool { return x.Path == d.Path }); i >= 0 {
		l.Devices[i] = d
		return
	}
	l.Devices = append(l.Devices, d)
}

func (g *specGen) RemoveDevice(path string) {
	if g.spec == nil || g.spec.Linux == nil {
		return
	}
	l := g.spec.Linux
	if i := slices.IndexFunc(l.Devices, func(x specs.LinuxDevice) bool { return x.Path == path }); i >= 0 {
		l.Devices = slices.Delete(l.Devices, i, i+1)
	}
}

// namespaceType accepts the OCI type names; runtime-tools knows all but
// "time", which is accepted too since our runtime-spec has it.
func namespaceType(ns string) (specs.LinuxNamespaceType, error) {
	switch t := specs.LinuxNamespaceType(ns); t {
	case specs.PIDNamespace, specs.NetworkNamespace, specs.MountNamespace, specs.IPCNamespace,
		specs.UTSNamespace, specs.UserNamespace, specs.CgroupNamespace, specs.TimeNamespace:
		return t, nil
	}
	return "", fmt.Errorf("unknown namespace type %q", ns)
}

func (g *specGen) AddOrReplaceLinuxNamespace(ns, path string) error {
	t, err := namespaceType(ns)
	if err != nil {
		return err
	}
	l := g.linux()
	want := specs.LinuxNamespace{Type: t, Path: path}
	if i := slices.IndexFunc(l.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == t }); i >= 0 {
		l.Namespaces[i] = want
		return nil
	}
	l.Namespaces = append(l.Namespaces, want)
	return nil
}

func (g *specGen) RemoveLinuxNamespace(ns string) error {
	t, err := namespaceType(ns)
	if err != nil {
		return err
	}
	if g.spec == nil || g.spec.Linux == nil {
		return nil
	}
	l := g.spec.Linux
	if i := slices.IndexFunc(l.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == t }); i >= 0 {
		l.Namespaces = slices.Delete(l.Namespaces, i, i+1)
	}
	return nil
}

func (g *specGen) AddLinuxSysctl(key, value string) {
	l := g.linux()
	if l.Sysctl == nil {
		l.Sysctl = map[string]string{}
	}
	l.Sysctl[key] = value
}

func (g *specGen) RemoveLinuxSysctl(key string) {
	if g.spec != nil && g.spec.Linux != nil {
		delete(g.spec.Linux.Sysctl, key)
	}
}

func (g *specGen) SetLinuxCgroupsPath(path string) {
	g.linux().CgroupsPath = path
}

func (g *specGen) SetLinuxRootPropagation(rp string) error {
	switch rp {
	case "", "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable":
	default:
		return fmt.Errorf("rootfs propagation %q is not one of (r)private, (r)slave, (r)shared, (r)unbindable or empty", rp)
	}
	g.linux().RootfsPropagation = rp
	return nil
}

func (g *specGen) AddLinuxResourcesDevice(allow bool, devType string, major, minor *int64, access string) {
	r := g.resources()
	// nrigen hands in pointers into the plugin's reply; keep our own.
	r.Devices = append(r.Devices, specs.LinuxDeviceCgroup{
		Allow:  allow,
		Type:   devType,
		Major:  clonePtr(major),
		Minor:  clonePtr(minor),
		Access: access,
	})
}

func (g *specGen) AddLinuxResourcesHugepageLimit(pageSize string, limit uint64) {
	r := g.resources()
	if i := slices.IndexFunc(r.HugepageLimits, func(h specs.LinuxHugepageLimit) bool { return h.Pagesize == pageSize }); i >= 0 {
		r.HugepageLimits[i].Limit = limit
		return
	}
	r.HugepageLimits = append(r.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: pageSize, Limit: limit})
}

func (g *specGen) AddLinuxResourcesUnified(key, val string) {
	r := g.resources()
	if r.Unified == nil {
		r.Unified = map[string]string{}
	}
	r.Unified[key] = val
}

func (g *specGen) SetLinuxResourcesCPUCpus(cpus string)             { g.cpu().Cpus = cpus }
func (g *specGen) SetLinuxResourcesCPUMems(mems string)             { g.cpu().Mems = mems }
func (g *specGen) SetLinuxResourcesCPUPeriod(period uint64)         { g.cpu().Period = &period }
func (g *specGen) SetLinuxResourcesCPUQuota(quota int64)            { g.cpu().Quota = &quota }
func (g *specGen) SetLinuxResourcesCPURealtimePeriod(period uint64) { g.cpu().RealtimePeriod = &period }
func (g *specGen) SetLinuxResourcesCPURealtimeRuntime(runtime int64) {
	g.cpu().RealtimeRuntime = &runtime
}
func (g *specGen) SetLinuxResourcesCPUShares(shares uint64) { g.cpu().Shares = &shares }
func (g *specGen) SetLinuxResourcesMemoryLimit(limit int64) { g.memory().Limit = &limit }
func (g *specGen) SetLinuxResourcesMemorySwap(swap int64)   { g.memory().Swap = &swap }

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
