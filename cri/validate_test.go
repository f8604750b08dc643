package cri

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/husk-runtime/husk/sandbox"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// goodPod is what kubelet sends for an ordinary pod.
func goodPod() *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "web-7d4b9", Namespace: "default", Uid: "0b8f7a52-5d0e-4d55-9b8e-2b6f0f3f7c11"},
		Hostname:     "web-7d4b9",
		LogDirectory: "/var/log/pods/default_web-7d4b9_0b8f7a52",
		DnsConfig:    &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"default.svc.cluster.local"}, Options: []string{"ndots:5"}},
		PortMappings: []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 8080}},
		Labels:       map[string]string{"io.kubernetes.pod.name": "web-7d4b9", "app": "web"},
		Annotations:  map[string]string{"kubernetes.io/config.source": "api"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: "/kubepods/besteffort/pod0b8f7a52",
			Sysctls:      map[string]string{"kernel.shm_rmid_forced": "1", "net.ipv4.ip_local_port_range": "1024 65000", "kernel/msgmax": "8192", "net.ipv4.conf.eth0.forwarding": "1"},
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				RunAsUser: &runtimeapi.Int64Value{Value: 1000}, SupplementalGroups: []int64{0, 2000},
			},
			Resources: &runtimeapi.LinuxContainerResources{CpuShares: 2, MemoryLimitInBytes: 128 << 20},
		},
	}
}

func goodContainer() *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata:   &runtimeapi.ContainerMetadata{Name: "nginx"},
		Image:      &runtimeapi.ImageSpec{Image: "registry.k8s.io/nginx:1.27"},
		Command:    []string{"/bin/sh"},
		Args:       []string{"-c", "exec nginx"},
		WorkingDir: "/srv",
		Envs:       []*runtimeapi.KeyValue{{Key: "PATH", Value: []byte("/bin")}, {Key: "data-1", Value: []byte("value-1")}},
		Mounts:     []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "/var/lib/kubelet/pods/x/volumes/data"}},
		Devices:    []*runtimeapi.Device{{ContainerPath: "/dev/fuse", HostPath: "/dev/fuse", Permissions: "rwm"}},
		LogPath:    "nginx/0.log",
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources: &runtimeapi.LinuxContainerResources{
				CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, MemoryLimitInBytes: 256 << 20, MemorySwapLimitInBytes: 256 << 20,
				OomScoreAdj: 1000, CpusetCpus: "0", CpusetMems: "0",
				HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 0}},
				Unified:        map[string]string{"memory.high": "max", "memory.oom.group": "1"},
			},
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				RunAsGroup: &runtimeapi.Int64Value{Value: 3000}, MaskedPaths: []string{"/proc/kcore"}, ReadonlyPaths: []string{"/proc/sys"},
			},
		},
	}
}

func TestValidateAcceptsKubeletsRequests(t *testing.T) {
	if err := validatePodSandboxConfig(goodPod()); err != nil {
		t.Errorf("pod: %v", err)
	}
	if err := validateContainerConfig(goodContainer(), goodPod()); err != nil {
		t.Errorf("container: %v", err)
	}
	// A pod with host network and IPC may still set neither kind.
	p := goodPod()
	p.Linux.Sysctls = nil
	p.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_NODE}
	if err := validatePodSandboxConfig(p); err != nil {
		t.Errorf("host-namespace pod: %v", err)
	}
}

func TestValidateRefuses(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	pod := func(edit func(p *runtimeapi.PodSandboxConfig)) func() error {
		return func() error { p := goodPod(); edit(p); return validatePodSandboxConfig(p) }
	}
	ctr := func(edit func(c *runtimeapi.ContainerConfig)) func() error {
		return func() error { c := goodContainer(); edit(c); return validateContainerConfig(c, goodPod()) }
	}
	res := func(edit func(r *runtimeapi.LinuxContainerResources)) func() error {
		return ctr(func(c *runtimeapi.ContainerConfig) { edit(c.Linux.Resources) })
	}
	for _, tc := range []struct {
		name, field string
		check       func() error
	}{
		{"1 MB pod name", "config.metadata.name", pod(func(p *runtimeapi.PodSandboxConfig) { p.Metadata.Name = long(1 << 20) })},
		{"no pod name", "config.metadata.name", pod(func(p *runtimeapi.PodSandboxConfig) { p.Metadata.Name = "" })},
		{"long namespace", "config.metadata.namespace", pod(func(p *runtimeapi.PodSandboxConfig) { p.Metadata.Namespace = long(64) })},
		{"uid with a slash", "config.metadata.uid", pod(func(p *runtimeapi.PodSandboxConfig) { p.Metadata.Uid = "../x" })},
		{"newline in a name", "config.metadata.name", pod(func(p *runtimeapi.PodSandboxConfig) { p.Metadata.Name = "a\nb" })},
		{"hostname", "config.hostname", pod(func(p *runtimeapi.PodSandboxConfig) { p.Hostname = "a b" })},
		{"relative log dir", "config.log_directory", pod(func(p *runtimeapi.PodSandboxConfig) { p.LogDirectory = "var/log" })},
		{"dns server", "config.dns_config.servers[0]", pod(func(p *runtimeapi.PodSandboxConfig) { p.DnsConfig.Servers[0] = "dns.local" })},
		{"empty search", "config.dns_config.searches[0]", pod(func(p *runtimeapi.PodSandboxConfig) { p.DnsConfig.Searches[0] = "" })},
		{"search with a newline", "config.dns_config.searches[0]", pod(func(p *runtimeapi.PodSandboxConfig) { p.DnsConfig.Searches[0] = "a\nnameserver 1.1.1.1" })},
		{"33 searches", "config.dns_config.searches", pod(func(p *runtimeapi.PodSandboxConfig) { p.DnsConfig.Searches = make([]string, 33) })},
		{"option with space", "config.dns_config.options[0]", pod(func(p *runtimeapi.PodSandboxConfig) { p.DnsConfig.Options[0] = "ndots:5 x" })},
		{"host port 70000", "config.port_mappings[0].host_port", pod(func(p *runtimeapi.PodSandboxConfig) { p.PortMappings[0].HostPort = 70000 })},
		{"container port -1", "config.port_mappings[0].container_port", pod(func(p *runtimeapi.PodSandboxConfig) { p.PortMappings[0].ContainerPort = -1 })},
		{"container port 0", "config.port_mappings[0].container_port", pod(func(p *runtimeapi.PodSandboxConfig) { p.PortMappings[0].ContainerPort = 0 })},
		{"protocol 7", "config.port_mappings[0].protocol", pod(func(p *runtimeapi.PodSandboxConfig) { p.PortMappings[0].Protocol = 7 })},
		{"host ip", "config.port_mappings[0].host_ip", pod(func(p *runtimeapi.PodSandboxConfig) { p.PortMappings[0].HostIp = "localhost" })},
		{"1 MB label key", `config.labels["` + long(200), pod(func(p *runtimeapi.PodSandboxConfig) { p.Labels[long(1<<20)] = "x" })},
		{"label key", `config.labels[""]`, pod(func(p *runtimeapi.PodSandboxConfig) { p.Labels[""] = "x" })},
		{"label value", `config.labels["app"]`, pod(func(p *runtimeapi.PodSandboxConfig) { p.Labels["app"] = long(254) })},
		{"annotations 300 KiB", `config.annotations["big"]`, pod(func(p *runtimeapi.PodSandboxConfig) { p.Annotations["big"] = long(300 << 10) })},
		{"cgroup parent ..", "config.linux.cgroup_parent", pod(func(p *runtimeapi.PodSandboxConfig) { p.Linux.CgroupParent = "/kubepods/../../etc" })},
		{"unknown sysctl", `config.linux.sysctls["net.ipv4.no_such_thing"]`, pod(func(p *runtimeapi.PodSandboxConfig) { p.Linux.Sysctls["net.ipv4.no_such_thing"] = "1" })},
		{"sysctl with ..", `config.linux.sysctls["net/../kernel/panic"]`, pod(func(p *runtimeapi.PodSandboxConfig) { p.Linux.Sysctls["net/../kernel/panic"] = "1" })},
		{"sysctl path", `config.linux.sysctls["/proc/sys/kernel/sem"]`, pod(func(p *runtimeapi.PodSandboxConfig) { p.Linux.Sysctls["/proc/sys/kernel/sem"] = "1" })},
		{"not namespaced", `config.linux.sysctls["kernel.panic"]`, pod(func(p *runtimeapi.PodSandboxConfig) { p.Linux.Sysctls["kernel.panic"] = "1" })},
		{"net sysctl on host network", `config.linux.sysctls["net.ipv4.ip_local_port_range"]`, pod(func(p *runtimeapi.PodSandboxConfig) {
			p.Linux.Sysctls = map[string]string{"net.ipv4.ip_local_port_range": "1024 65000"}
			p.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}
		})},
		{"ipc sysctl on host ipc", `config.linux.sysctls["kernel.shm_rmid_forced"]`, pod(func(p *runtimeapi.PodSandboxConfig) {
			p.Linux.Sysctls = map[string]string{"kernel.shm_rmid_forced": "1"}
			p.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{Ipc: runtimeapi.NamespaceMode_NODE}
		})},
		{"supplemental group -1", "config.linux.security_context.supplemental_groups[1]", pod(func(p *runtimeapi.PodSandboxConfig) {
			p.Linux.SecurityContext.SupplementalGroups[1] = -1
		})},
		{"pod run as user 2^32", "config.linux.security_context.run_as_user", pod(func(p *runtimeapi.PodSandboxConfig) {
			p.Linux.SecurityContext.RunAsUser.Value = 1 << 32
		})},
		{"pod memory 1 byte", "config.linux.resources.memory_limit_in_bytes", pod(func(p *runtimeapi.PodSandboxConfig) { p.Linux.Resources.MemoryLimitInBytes = 1 })},

		{"container name with /", "config.metadata.name", ctr(func(c *runtimeapi.ContainerConfig) { c.Metadata.Name = "a/b" })},
		{"no image", "config.image.image", ctr(func(c *runtimeapi.ContainerConfig) { c.Image = nil })},
		{"NUL in args", "config.args[1]", ctr(func(c *runtimeapi.ContainerConfig) { c.Args[1] = "a\x00b" })},
		{"relative working dir", "config.working_dir", ctr(func(c *runtimeapi.ContainerConfig) { c.WorkingDir = "srv" })},
		{"1 MB working dir", "config.working_dir", ctr(func(c *runtimeapi.ContainerConfig) { c.WorkingDir = "/" + long(1<<20) })},
		{"empty env key", "config.envs[0].key", ctr(func(c *runtimeapi.ContainerConfig) { c.Envs[0].Key = "" })},
		{"env key with =", "config.envs[1].key", ctr(func(c *runtimeapi.ContainerConfig) { c.Envs[1].Key = "A=B" })},
		{"relative host path", "config.mounts[0].host_path", ctr(func(c *runtimeapi.ContainerConfig) { c.Mounts[0].HostPath = "data" })},
		{"relative container path", "config.mounts[0].container_path", ctr(func(c *runtimeapi.ContainerConfig) { c.Mounts[0].ContainerPath = "data" })},
		{"propagation 9", "config.mounts[0].propagation", ctr(func(c *runtimeapi.ContainerConfig) { c.Mounts[0].Propagation = 9 })},
		{"device permissions", "config.devices[0].permissions", ctr(func(c *runtimeapi.ContainerConfig) { c.Devices[0].Permissions = "rwx" })},
		{"log path escapes", "config.log_path", ctr(func(c *runtimeapi.ContainerConfig) { c.LogPath = "../../etc/passwd" })},
		{"1 MB log path", "config.log_path", ctr(func(c *runtimeapi.ContainerConfig) { c.LogPath = long(1 << 20) })},
		{"run as group -1", "config.linux.security_context.run_as_group", ctr(func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.RunAsGroup.Value = -1
		})},
		{"relative masked path", "config.linux.security_context.masked_paths[0]", ctr(func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.MaskedPaths[0] = "proc"
		})},
		{"cpuset syntax", "config.linux.resources.cpuset_cpus", res(func(r *runtimeapi.LinuxContainerResources) { r.CpusetCpus = "zero" })},
		{"cpuset range", "config.linux.resources.cpuset_cpus", res(func(r *runtimeapi.LinuxContainerResources) { r.CpusetCpus = "0-4096" })},
		{"cpuset huge", "config.linux.resources.cpuset_cpus", res(func(r *runtimeapi.LinuxContainerResources) { r.CpusetCpus = "0-4294967295" })},
		{"cpuset mems", "config.linux.resources.cpuset_mems", res(func(r *runtimeapi.LinuxContainerResources) { r.CpusetMems = "7" })},
		{"oom_score_adj 5000", "config.linux.resources.oom_score_adj", res(func(r *runtimeapi.LinuxContainerResources) { r.OomScoreAdj = 5000 })},
		{"memory 1 byte", "config.linux.resources.memory_limit_in_bytes", res(func(r *runtimeapi.LinuxContainerResources) { r.MemoryLimitInBytes = 1 })},
		{"memory negative", "config.linux.resources.memory_limit_in_bytes", res(func(r *runtimeapi.LinuxContainerResources) { r.MemoryLimitInBytes = -5 })},
		{"swap below memory", "config.linux.resources.memory_swap_limit_in_bytes", res(func(r *runtimeapi.LinuxContainerResources) { r.MemorySwapLimitInBytes = 1 << 20 })},
		{"cpu_shares MaxInt64", "config.linux.resources.cpu_shares", res(func(r *runtimeapi.LinuxContainerResources) { r.CpuShares = math.MaxInt64 })},
		{"cpu_period 10", "config.linux.resources.cpu_period", res(func(r *runtimeapi.LinuxContainerResources) { r.CpuPeriod = 10 })},
		{"cpu_quota -5", "config.linux.resources.cpu_quota", res(func(r *runtimeapi.LinuxContainerResources) { r.CpuQuota = -5 })},
		{"hugepage size ../", "config.linux.resources.hugepage_limits[0].page_size", res(func(r *runtimeapi.LinuxContainerResources) {
			r.HugepageLimits[0].PageSize = "../2MB"
		})},
		{"unified key ../", `config.linux.resources.unified["../memory.max"]`, res(func(r *runtimeapi.LinuxContainerResources) { r.Unified["../memory.max"] = "1" })},
		{"unified value newline", `config.linux.resources.unified["memory.high"]`, res(func(r *runtimeapi.LinuxContainerResources) { r.Unified["memory.high"] = "1\n2" })},
	} {
		err := tc.check()
		var f *invalidField
		if !errors.As(err, &f) || !errors.Is(err, sandbox.ErrInvalid) {
			t.Errorf("%s: got %v, want an invalid field", tc.name, err)
			continue
		}
		// A field named by a huge map key comes cut, starting as asked.
		named := f.field == tc.field || strings.HasPrefix(f.field, tc.field) && strings.Contains(f.field, "... (")
		if !named || !strings.HasPrefix(err.Error(), f.field+": ") {
			t.Errorf("%s: field %q (%v), want %q", tc.name, f.field, err, tc.field)
		}
		if len(err.Error()) > 1024 {
			t.Errorf("%s: a message of %d bytes: the value must not be echoed whole", tc.name, len(err.Error()))
		}
	}
}

// FuzzValidate feeds arbitrary request configs (proto wire bytes) to the
// gate: it answers, never panics, and what it accepts has the limits it
// promises.
func FuzzValidate(f *testing.F) {
	for _, m := range []proto.Message{goodPod(), goodContainer()} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p runtimeapi.PodSandboxConfig
		if proto.Unmarshal(b, &p) == nil {
			if validatePodSandboxConfig(&p) == nil && len(p.GetMetadata().GetName()) > maxPodName {
				t.Fatalf("accepted a pod name of %d bytes", len(p.GetMetadata().GetName()))
			}
		}
		var c runtimeapi.ContainerConfig
		if proto.Unmarshal(b, &c) == nil {
			if validateContainerConfig(&c, &p) == nil && c.GetLinux().GetResources().GetOomScoreAdj() > 1000 {
				t.Fatal("accepted oom_score_adj above 1000")
			}
			_ = validateResources("linux", c.GetLinux().GetResources())
		}
	})
}
