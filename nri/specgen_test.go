package nri

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func ptrTo[T any](v T) *T { return &v }

// baseSpec is what the CRI path hands NRI for an ordinary container.
func baseSpec() *specs.Spec {
	return &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Args:    []string{"/bin/sh", "-c", "sleep 1000"},
			Env:     []string{"PATH=/usr/bin:/bin", "HOME=/root", "DROP=me"},
			Cwd:     "/",
			Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
		},
		Root:     &specs.Root{Path: "rootfs"},
		Hostname: "web-0",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/etc/hosts", Type: "bind", Source: "/var/lib/husk/pods/p0/hosts", Options: []string{"rbind", "rw"}},
			{Destination: "/var/cache", Type: "bind", Source: "/srv/cache", Options: []string{"rbind", "ro"}},
		},
		Annotations: map[string]string{
			"io.kubernetes.cri.container-type": "container",
			"drop.me":                          "x",
		},
		Linux: &specs.Linux{
			CgroupsPath: "kubepods-burstable-pod1.slice:husk:c1",
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
				Memory:  &specs.LinuxMemory{Limit: ptrTo(int64(256 << 20))},
				CPU: &specs.LinuxCPU{
					Shares: ptrTo(uint64(512)),
					Quota:  ptrTo(int64(50000)),
					Period: ptrTo(uint64(100000)),
				},
			},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.NetworkNamespace, Path: "/var/run/netns/cni-1"},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
			},
		},
	}
}

var (
	fuseDevice = &api.LinuxDevice{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: api.FileMode(os.FileMode(0o666))}
	nriHook    = &api.Hook{Path: "/usr/libexec/nri-hook", Args: []string{"nri-hook", "prestart"}}
)

func TestAdjustSpec(t *testing.T) {
	for _, tc := range []struct {
		name   string
		adjust func(a *api.ContainerAdjustment)
		want   func(s *specs.Spec)
	}{
		{
			name: "env add, replace and remove",
			adjust: func(a *api.ContainerAdjustment) {
				a.AddEnv("HOME", "/home/app")
				a.AddEnv("NEW", "1")
				a.RemoveEnv("DROP")
			},
			want: func(s *specs.Spec) {
				s.Process.Env = []string{"PATH=/usr/bin:/bin", "HOME=/home/app", "NEW=1"}
			},
		},
		{
			name:   "args",
			adjust: func(a *api.ContainerAdjustment) { a.SetArgs([]string{"/app", "--serve"}) },
			want:   func(s *specs.Spec) { s.Process.Args = []string{"/app", "--serve"} },
		},
		{
			name: "mount add and remove",
			adjust: func(a *api.ContainerAdjustment) {
				a.AddMount(&api.Mount{Destination: "/data", Type: "bind", Source: "/srv/data", Options: []string{"rbind", "rw"}})
				a.RemoveMount("/var/cache")
			},
			// nrigen re-sorts all mounts by depth, then destination.
			want: func(s *specs.Spec) {
				s.Mounts = []specs.Mount{
					{Destination: "/data", Type: "bind", Source: "/srv/data", Options: []string{"rbind", "rw"}},
					s.Mounts[1], // /dev
					s.Mounts[0], // /proc
					s.Mounts[2], // /etc/hosts
				}
			},
		},
		{
			name:   "memory limit",
			adjust: func(a *api.ContainerAdjustment) { a.SetLinuxMemoryLimit(512 << 20) },
			// nrigen sets swap to the limit too: no swap beyond it.
			want: func(s *specs.Spec) {
				s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: ptrTo(int64(512 << 20)), Swap: ptrTo(int64(512 << 20))}
			},
		},
		{
			name: "cpu shares and quota",
			adjust: func(a *api.ContainerAdjustment) {
				a.SetLinuxCPUShares(1024)
				a.SetLinuxCPUQuota(200000)
			},
			want: func(s *specs.Spec) {
				s.Linux.Resources.CPU.Shares = ptrTo(uint64(1024))
				s.Linux.Resources.CPU.Quota = ptrTo(int64(200000))
			},
		},
		{
			name: "annotation add and remove",
			adjust: func(a *api.ContainerAdjustment) {
				a.AddAnnotation("example.com/owner", "plugin")
				a.RemoveAnnotation("drop.me")
			},
			want: func(s *specs.Spec) {
				s.Annotations = map[string]string{
					"io.kubernetes.cri.container-type": "container",
					"example.com/owner":                "plugin",
				}
			},
		},
		{
			name:   "device",
			adjust: func(a *api.ContainerAdjustment) { a.AddDevice(fuseDevice) },
			want: func(s *specs.Spec) {
				s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: ptrTo(os.FileMode(0o666))}}
				s.Linux.Resources.Devices = append(s.Linux.Resources.Devices,
					specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptrTo(int64(10)), Minor: ptrTo(int64(229)), Access: "rw"})
			},
		},
		{
			name: "hooks",
			adjust: func(a *api.ContainerAdjustment) {
				a.AddHooks(&api.Hooks{Prestart: []*api.Hook{nriHook}, CreateRuntime: []*api.Hook{nriHook}, Poststop: []*api.Hook{nriHook}})
			},
			want: func(s *specs.Spec) {
				h := specs.Hook{Path: "/usr/libexec/nri-hook", Args: []string{"nri-hook", "prestart"}}
				s.Hooks = &specs.Hooks{
					Prestart:      []specs.Hook{h}, //nolint:staticcheck // deprecated in OCI, still offered by NRI
					CreateRuntime: []specs.Hook{h},
					Poststop:      []specs.Hook{h},
				}
			},
		},
		{
			name:   "rlimit",
			adjust: func(a *api.ContainerAdjustment) { a.AddRlimit("RLIMIT_NPROC", 4096, 2048) },
			want: func(s *specs.Spec) {
				s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_NPROC", Hard: 4096, Soft: 2048})
			},
		},
		{
			name:   "oom score adj",
			adjust: func(a *api.ContainerAdjustment) { a.SetLinuxOomScoreAdj(ptrTo(-500)) },
			want:   func(s *specs.Spec) { s.Process.OOMScoreAdj = ptrTo(-500) },
		},
		{
			name:   "cgroups path",
			adjust: func(a *api.ContainerAdjustment) { a.SetLinuxCgroupsPath("nri.slice:husk:c1") },
			want:   func(s *specs.Spec) { s.Linux.CgroupsPath = "nri.slice:husk:c1" },
		},
		{
			name: "namespace replace and remove",
			adjust: func(a *api.ContainerAdjustment) {
				a.AddOrReplaceNamespace(&api.LinuxNamespace{Type: "network", Path: "/var/run/netns/nri"})
				a.RemoveNamespace(&api.LinuxNamespace{Type: "ipc"})
				a.AddOrReplaceNamespace(&api.LinuxNamespace{Type: "cgroup"})
			},
			want: func(s *specs.Spec) {
				s.Linux.Namespaces = []specs.LinuxNamespace{
					{Type: specs.PIDNamespace},
					{Type: specs.NetworkNamespace, Path: "/var/run/netns/nri"},
					{Type: specs.UTSNamespace},
					{Type: specs.MountNamespace},
					{Type: specs.CgroupNamespace},
				}
			},
		},
		{
			name: "sysctl, unified and hugepages",
			adjust: func(a *api.ContainerAdjustment) {
				a.SetLinuxSysctl("net.ipv4.ip_unprivileged_port_start", "0")
				a.AddLinuxUnified("memory.high", "max")
				a.AddLinuxHugepageLimit("2MB", 1<<30)
			},
			want: func(s *specs.Spec) {
				s.Linux.Sysctl = map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"}
				s.Linux.Resources.Unified = map[string]string{"memory.high": "max"}
				s.Linux.Resources.HugepageLimits = []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 1 << 30}}
			},
		},
		{
			name:   "empty adjustment",
			adjust: func(*api.ContainerAdjustment) {},
			want:   func(*specs.Spec) {},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			adj := &api.ContainerAdjustment{}
			tc.adjust(adj)
			got, want := baseSpec(), baseSpec()
			tc.want(want)
			if err := adjustSpec(got, adj); err != nil {
				t.Fatalf("adjustSpec: %v", err)
			}
			assertSpec(t, got, want)
		})
	}
}

func TestAdjustSpecNil(t *testing.T) {
	s := baseSpec()
	if err := adjustSpec(s, nil); err != nil {
		t.Fatalf("nil adjustment: %v", err)
	}
	assertSpec(t, s, baseSpec())
	if err := adjustSpec(nil, &api.ContainerAdjustment{}); err == nil {
		t.Fatal("nil spec: no error")
	}
}

func TestAdjustSpecUnsupported(t *testing.T) {
	for _, tc := range []struct {
		name   string
		adjust func(a *api.ContainerAdjustment)
		want   string
	}{
		{
			name:   "cdi device",
			adjust: func(a *api.ContainerAdjustment) { a.AddCDIDevice(&api.CDIDevice{Name: "vendor.com/gpu=0"}) },
			want:   "CDI devices from NRI plugins are not supported: vendor.com/gpu=0",
		},
		{
			name:   "block io class",
			adjust: func(a *api.ContainerAdjustment) { a.SetLinuxBlockIOClass("gold") },
			want:   `block I/O class "gold"`,
		},
		{
			name:   "rdt class",
			adjust: func(a *api.ContainerAdjustment) { a.SetLinuxRDTClass("gold") },
			want:   `RDT class "gold"`,
		},
		{
			name: "unknown namespace",
			adjust: func(a *api.ContainerAdjustment) {
				a.AddOrReplaceNamespace(&api.LinuxNamespace{Type: "net"})
			},
			want: `unknown namespace type "net"`,
		},
		{
			name:   "unknown namespace removal",
			adjust: func(a *api.ContainerAdjustment) { a.RemoveNamespace(&api.LinuxNamespace{Type: "bogus"}) },
			want:   `unknown namespace type "bogus"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			adj := &api.ContainerAdjustment{}
			tc.adjust(adj)
			err := adjustSpec(baseSpec(), adj)
			if err == nil {
				t.Fatal("no error")
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "NRI adjustment: ") || !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q, want it to start with \"NRI adjustment: \" and contain %q", msg, tc.want)
			}
		})
	}
}

// An empty block I/O or RDT class asks for none: nothing to resolve.
func TestAdjustSpecClearClasses(t *testing.T) {
	adj := &api.ContainerAdjustment{}
	adj.SetLinuxBlockIOClass("")
	adj.SetLinuxRDTClass("")
	s := baseSpec()
	s.Linux.IntelRdt = &specs.LinuxIntelRdt{ClosID: "old"}
	if err := adjustSpec(s, adj); err != nil {
		t.Fatalf("adjustSpec: %v", err)
	}
	assertSpec(t, s, baseSpec())
}

func TestRootPropagation(t *testing.T) {
	for _, rp := range []string{"", "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable"} {
		g := &specGen{spec: &specs.Spec{}}
		if err := g.SetLinuxRootPropagation(rp); err != nil {
			t.Errorf("%q: %v", rp, err)
		} else if got := g.spec.Linux.RootfsPropagation; got != rp {
			t.Errorf("%q: set %q", rp, got)
		}
	}
	for _, rp := range []string{"bogus", "rshared,rslave", "Private", "recursive"} {
		g := &specGen{spec: baseSpec()}
		g.spec.Linux.RootfsPropagation = "rslave"
		if err := g.SetLinuxRootPropagation(rp); err == nil {
			t.Errorf("%q: no error", rp)
		}
		if got := g.spec.Linux.RootfsPropagation; got != "rslave" {
			t.Errorf("%q: propagation changed to %q", rp, got)
		}
	}
}

// Every method on an empty spec (and on none at all) must allocate what it
// writes to rather than panic.
func TestSpecGenZeroSpec(t *testing.T) {
	calls := []struct {
		name  string
		call  func(g *specGen) error
		check func(s *specs.Spec) bool
	}{
		{"AddAnnotation", func(g *specGen) error { g.AddAnnotation("k", "v"); return nil },
			func(s *specs.Spec) bool { return s.Annotations["k"] == "v" }},
		{"RemoveAnnotation", func(g *specGen) error { g.RemoveAnnotation("k"); return nil }, nil},
		{"AddDevice", func(g *specGen) error { g.AddDevice(specs.LinuxDevice{Path: "/dev/x"}); return nil },
			func(s *specs.Spec) bool { return len(s.Linux.Devices) == 1 }},
		{"RemoveDevice", func(g *specGen) error { g.RemoveDevice("/dev/x"); return nil }, nil},
		{"AddOrReplaceLinuxNamespace", func(g *specGen) error { return g.AddOrReplaceLinuxNamespace("time", "") },
			func(s *specs.Spec) bool { return s.Linux.Namespaces[0].Type == specs.TimeNamespace }},
		{"RemoveLinuxNamespace", func(g *specGen) error { return g.RemoveLinuxNamespace("pid") }, nil},
		{"AddPreStartHook", func(g *specGen) error { g.AddPreStartHook(specs.Hook{Path: "/h"}); return nil },
			func(s *specs.Spec) bool { return len(s.Hooks.Prestart) == 1 }}, //nolint:staticcheck // deprecated in OCI, still offered by NRI
		{"AddPostStartHook", func(g *specGen) error { g.AddPostStartHook(specs.Hook{Path: "/h"}); return nil },
			func(s *specs.Spec) bool { return len(s.Hooks.Poststart) == 1 }},
		{"AddPostStopHook", func(g *specGen) error { g.AddPostStopHook(specs.Hook{Path: "/h"}); return nil },
			func(s *specs.Spec) bool { return len(s.Hooks.Poststop) == 1 }},
		{"AddProcessEnv", func(g *specGen) error { g.AddProcessEnv("A", "1"); return nil },
			func(s *specs.Spec) bool { return reflect.DeepEqual(s.Process.Env, []string{"A=1"}) }},
		{"ClearProcessEnv", func(g *specGen) error { g.ClearProcessEnv(); return nil }, nil},
		{"AddLinuxResourcesDevice", func(g *specGen) error {
			g.AddLinuxResourcesDevice(true, "c", nil, nil, "rw")
			return nil
		}, func(s *specs.Spec) bool { return len(s.Linux.Resources.Devices) == 1 }},
		{"AddLinuxResourcesHugepageLimit", func(g *specGen) error { g.AddLinuxResourcesHugepageLimit("1GB", 1); return nil },
			func(s *specs.Spec) bool { return len(s.Linux.Resources.HugepageLimits) == 1 }},
		{"AddLinuxResourcesUnified", func(g *specGen) error { g.AddLinuxResourcesUnified("pids.max", "10"); return nil },
			func(s *specs.Spec) bool { return s.Linux.Resources.Unified["pids.max"] == "10" }},
		{"AddMount", func(g *specGen) error { g.AddMount(specs.Mount{Destination: "/m"}); return nil },
			func(s *specs.Spec) bool { return len(s.Mounts) == 1 }},
		{"AddLinuxSysctl", func(g *specGen) error { g.AddLinuxSysctl("k", "v"); return nil },
			func(s *specs.Spec) bool { return s.Linux.Sysctl["k"] == "v" }},
		{"ClearMounts", func(g *specGen) error { g.ClearMounts(); return nil }, nil},
		{"Mounts", func(g *specGen) error { _ = g.Mounts(); return nil }, nil},
		{"RemoveMount", func(g *specGen) error { g.RemoveMount("/m"); return nil }, nil},
		{"RemoveLinuxSysctl", func(g *specGen) error { g.RemoveLinuxSysctl("k"); return nil }, nil},
		{"SetProcessArgs", func(g *specGen) error { g.SetProcessArgs([]string{"a"}); return nil },
			func(s *specs.Spec) bool { return s.Process.Args[0] == "a" }},
		{"SetLinuxCgroupsPath", func(g *specGen) error { g.SetLinuxCgroupsPath("/c"); return nil },
			func(s *specs.Spec) bool { return s.Linux.CgroupsPath == "/c" }},
		{"SetLinuxResourcesCPUCpus", func(g *specGen) error { g.SetLinuxResourcesCPUCpus("0-1"); return nil },
			func(s *specs.Spec) bool { return s.Linux.Resources.CPU.Cpus == "0-1" }},
		{"SetLinuxResourcesCPUMems", func(g *specGen) error { g.SetLinuxResourcesCPUMems("0"); return nil },
			func(s *specs.Spec) bool { return s.Linux.Resources.CPU.Mems == "0" }},
		{"SetLinuxResourcesCPUPeriod", func(g *specGen) error { g.SetLinuxResourcesCPUPeriod(1); return nil },
			func(s *specs.Spec) bool { return *s.Linux.Resources.CPU.Period == 1 }},
		{"SetLinuxResourcesCPUQuota", func(g *specGen) error { g.SetLinuxResourcesCPUQuota(2); return nil },
			func(s *specs.Spec) bool { return *s.Linux.Resources.CPU.Quota == 2 }},
		{"SetLinuxResourcesCPURealtimePeriod", func(g *specGen) error { g.SetLinuxResourcesCPURealtimePeriod(3); return nil },
			func(s *specs.Spec) bool { return *s.Linux.Resources.CPU.RealtimePeriod == 3 }},
		{"SetLinuxResourcesCPURealtimeRuntime", func(g *specGen) error { g.SetLinuxResourcesCPURealtimeRuntime(4); return nil },
			func(s *specs.Spec) bool { return *s.Linux.Resources.CPU.RealtimeRuntime == 4 }},
		{"SetLinuxResourcesCPUShares", func(g *specGen) error { g.SetLinuxResourcesCPUShares(5); return nil },
			func(s *specs.Spec) bool { return *s.Linux.Resources.CPU.Shares == 5 }},
		{"SetLinuxResourcesMemoryLimit", func(g *specGen) error { g.SetLinuxResourcesMemoryLimit(6); return nil },
			func(s *specs.Spec) bool { return *s.Linux.Resources.Memory.Limit == 6 }},
		{"SetLinuxResourcesMemorySwap", func(g *specGen) error { g.SetLinuxResourcesMemorySwap(7); return nil },
			func(s *specs.Spec) bool { return *s.Linux.Resources.Memory.Swap == 7 }},
		{"SetLinuxRootPropagation", func(g *specGen) error { return g.SetLinuxRootPropagation("rslave") },
			func(s *specs.Spec) bool { return s.Linux.RootfsPropagation == "rslave" }},
		{"SetProcessOOMScoreAdj", func(g *specGen) error { g.SetProcessOOMScoreAdj(8); return nil },
			func(s *specs.Spec) bool { return *s.Process.OOMScoreAdj == 8 }},
		{"Spec", func(g *specGen) error { _ = g.Spec(); return nil }, nil},
	}
	for _, tc := range calls {
		for _, g := range map[string]*specGen{"zero spec": {spec: &specs.Spec{}}, "no spec": {}} {
			if err := tc.call(g); err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			if tc.check != nil && !tc.check(g.Spec()) {
				t.Errorf("%s: not applied: %s", tc.name, specJSON(g.Spec()))
			}
		}
	}
}

// adjustSpec must also cope with an empty spec where nrigen itself writes
// to parts it does not allocate.
func TestAdjustSpecZeroSpec(t *testing.T) {
	adj := &api.ContainerAdjustment{}
	adj.AddEnv("A", "1")
	adj.RemoveEnv("B")
	adj.SetArgs([]string{"/app"})
	adj.AddMount(&api.Mount{Destination: "/data", Type: "bind", Source: "/srv/data", Options: []string{"rbind"}})
	adj.RemoveMount("/gone")
	adj.AddAnnotation("k", "v")
	adj.AddDevice(fuseDevice)
	adj.AddHooks(&api.Hooks{Poststart: []*api.Hook{nriHook}})
	adj.AddRlimit("RLIMIT_NOFILE", 10, 10)
	adj.SetLinuxOomScoreAdj(ptrTo(1))
	adj.SetLinuxCgroupsPath("/c")
	adj.SetLinuxMemoryLimit(1 << 20)
	adj.SetLinuxCPUShares(2)
	adj.SetLinuxSysctl("k", "v")
	adj.AddOrReplaceNamespace(&api.LinuxNamespace{Type: "network", Path: "/n"})
	adj.SetLinuxSeccompPolicy(&api.LinuxSeccomp{DefaultAction: "SCMP_ACT_ERRNO"})
	s := &specs.Spec{}
	if err := adjustSpec(s, adj); err != nil {
		t.Fatalf("adjustSpec: %v", err)
	}
	if !reflect.DeepEqual(s.Process.Env, []string{"A=1"}) || len(s.Process.Rlimits) != 1 ||
		len(s.Mounts) != 1 || s.Linux.Seccomp == nil || s.Linux.Namespaces[0].Path != "/n" {
		t.Fatalf("not applied: %s", specJSON(s))
	}
}

func assertSpec(t *testing.T, got, want *specs.Spec) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("spec\n got: %s\nwant: %s", specJSON(got), specJSON(want))
	}
}

func specJSON(s *specs.Spec) string {
	b, _ := json.Marshal(s)
	return string(b)
}
