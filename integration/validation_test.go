package integration

import (
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Requests whose problem is in the request, sent to a live daemon: each is
// answered InvalidArgument naming the field, before any work starts (no
// pod, container, netns or dir of it is left), and the daemon goes on
// serving the pod it has.
func TestRequestValidation(t *testing.T) {
	d := StartDaemon(t)
	ref := busyboxRef(t)
	pull(t, d, ref)
	ctx := ctxT(t, 3*time.Minute)

	good := podConfig("valid")
	good.DnsConfig = &runtimeapi.DNSConfig{Servers: []string{"10.0.0.10"}, Searches: []string{"svc.local"}}
	podID := runPod(t, d, good)
	ctrID := runContainer(t, d, podID, good, ctrConfig("sleeper", ref, "sleep", "600"))

	long := func(n int) string { return strings.Repeat("x", n) }
	expectInvalid := func(what, field string, err error) {
		t.Helper()
		st, _ := status.FromError(err)
		if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), field) {
			t.Errorf("%s: got %v %q, want InvalidArgument naming %s", what, st.Code(), st.Message(), field)
		}
		if len(st.Message()) > 2048 {
			t.Errorf("%s: a message of %d bytes", what, len(st.Message()))
		}
	}

	pods := []struct {
		what, field string
		edit        func(p *runtimeapi.PodSandboxConfig)
	}{
		{"a 1 MB pod name", "config.metadata.name", func(p *runtimeapi.PodSandboxConfig) { p.Metadata.Name = long(1 << 20) }},
		{"a 64-byte namespace", "config.metadata.namespace", func(p *runtimeapi.PodSandboxConfig) { p.Metadata.Namespace = long(64) }},
		{"a uid with a slash", "config.metadata.uid", func(p *runtimeapi.PodSandboxConfig) { p.Metadata.Uid = "a/../../b" }},
		{"a hostname with a space", "config.hostname", func(p *runtimeapi.PodSandboxConfig) { p.Hostname = "a b" }},
		{"a sysctl that does not exist", "net.ipv4.no_such_knob", func(p *runtimeapi.PodSandboxConfig) {
			p.Linux.Sysctls = map[string]string{"net.ipv4.no_such_knob": "1"}
		}},
		{"a sysctl with ..", "net/../kernel/panic", func(p *runtimeapi.PodSandboxConfig) {
			p.Linux.Sysctls = map[string]string{"net/../kernel/panic": "1"}
		}},
		{"a sysctl that is not namespaced", "kernel.panic", func(p *runtimeapi.PodSandboxConfig) {
			p.Linux.Sysctls = map[string]string{"kernel.panic": "1"}
		}},
		{"a net sysctl on the host network", "net.ipv4.ip_local_port_range", func(p *runtimeapi.PodSandboxConfig) {
			p.Linux.Sysctls = map[string]string{"net.ipv4.ip_local_port_range": "1024 60999"}
			p.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}}
		}},
		{"host port 70000", "config.port_mappings[0].host_port", func(p *runtimeapi.PodSandboxConfig) {
			p.PortMappings = []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 70000}}
		}},
		{"container port -1", "config.port_mappings[0].container_port", func(p *runtimeapi.PodSandboxConfig) {
			p.PortMappings = []*runtimeapi.PortMapping{{ContainerPort: -1}}
		}},
		{"protocol 9", "config.port_mappings[0].protocol", func(p *runtimeapi.PodSandboxConfig) {
			p.PortMappings = []*runtimeapi.PortMapping{{ContainerPort: 80, Protocol: 9}}
		}},
		{"an empty DNS search", "config.dns_config.searches[1]", func(p *runtimeapi.PodSandboxConfig) { p.DnsConfig.Searches = []string{"a.local", ""} }},
		{"a DNS search with a newline", "config.dns_config.searches[0]", func(p *runtimeapi.PodSandboxConfig) {
			p.DnsConfig.Searches = []string{"a.local\nnameserver 8.8.8.8"}
		}},
		{"a DNS server that is a name", "config.dns_config.servers[0]", func(p *runtimeapi.PodSandboxConfig) { p.DnsConfig.Servers = []string{"dns.google"} }},
		{"a relative log directory", "config.log_directory", func(p *runtimeapi.PodSandboxConfig) { p.LogDirectory = "logs" }},
		{"a cgroup parent climbing out", "config.linux.cgroup_parent", func(p *runtimeapi.PodSandboxConfig) { p.Linux.CgroupParent = "/husk/../../x" }},
		{"supplemental group -1", "config.linux.security_context.supplemental_groups[0]", func(p *runtimeapi.PodSandboxConfig) {
			p.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{SupplementalGroups: []int64{-1}}
		}},
		{"a 300 KiB annotation", `config.annotations["big"]`, func(p *runtimeapi.PodSandboxConfig) { p.Annotations = map[string]string{"big": long(300 << 10)} }},
		{"pod overhead cpu_shares MaxInt64", "config.linux.overhead.cpu_shares", func(p *runtimeapi.PodSandboxConfig) {
			p.Linux.Overhead = &runtimeapi.LinuxContainerResources{CpuShares: math.MaxInt64}
		}},
	}
	for _, tc := range pods {
		cfg := proto.Clone(good).(*runtimeapi.PodSandboxConfig)
		cfg.Metadata.Uid += "-" + strings.ReplaceAll(tc.what, " ", "-")
		tc.edit(cfg)
		_, err := d.RT.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
		expectInvalid("RunPodSandbox with "+tc.what, tc.field, err)
	}

	res := func(edit func(r *runtimeapi.LinuxContainerResources)) func(c *runtimeapi.ContainerConfig) {
		return func(c *runtimeapi.ContainerConfig) {
			c.Linux.Resources = &runtimeapi.LinuxContainerResources{}
			edit(c.Linux.Resources)
		}
	}
	ctrs := []struct {
		what, field string
		edit        func(c *runtimeapi.ContainerConfig)
	}{
		{"an empty env key", "config.envs[0].key", func(c *runtimeapi.ContainerConfig) { c.Envs = []*runtimeapi.KeyValue{{Key: "", Value: []byte("v")}} }},
		{"an env key holding =", "config.envs[0].key", func(c *runtimeapi.ContainerConfig) { c.Envs = []*runtimeapi.KeyValue{{Key: "A=B"}} }},
		{"a relative host path", "config.mounts[0].host_path", func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "data"}}
		}},
		{"a relative container path", "config.mounts[0].container_path", func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{ContainerPath: "data", HostPath: "/tmp"}}
		}},
		{"a 1 MB working dir", "config.working_dir", func(c *runtimeapi.ContainerConfig) { c.WorkingDir = "/" + long(1<<20) }},
		{"a relative working dir", "config.working_dir", func(c *runtimeapi.ContainerConfig) { c.WorkingDir = "srv" }},
		{"a 1 MB log path", "config.log_path", func(c *runtimeapi.ContainerConfig) { c.LogPath = long(1 << 20) }},
		{"a NUL in an argument", "config.command[1]", func(c *runtimeapi.ContainerConfig) { c.Command = []string{"sh", "a\x00b"} }},
		{"a device with permissions rwx", "config.devices[0].permissions", func(c *runtimeapi.ContainerConfig) {
			c.Devices = []*runtimeapi.Device{{ContainerPath: "/dev/null", HostPath: "/dev/null", Permissions: "rwx"}}
		}},
		{"a cpuset that is not one", "config.linux.resources.cpuset_cpus", res(func(r *runtimeapi.LinuxContainerResources) { r.CpusetCpus = "zero-one" })},
		{"a cpuset beyond the host", "config.linux.resources.cpuset_cpus", res(func(r *runtimeapi.LinuxContainerResources) { r.CpusetCpus = "0-4095" })},
		{"oom_score_adj 5000", "config.linux.resources.oom_score_adj", res(func(r *runtimeapi.LinuxContainerResources) { r.OomScoreAdj = 5000 })},
		{"a memory limit of 1 byte", "config.linux.resources.memory_limit_in_bytes", res(func(r *runtimeapi.LinuxContainerResources) { r.MemoryLimitInBytes = 1 })},
		{"cpu_shares MaxInt64", "config.linux.resources.cpu_shares", res(func(r *runtimeapi.LinuxContainerResources) { r.CpuShares = math.MaxInt64 })},
		{"cpu_period 1", "config.linux.resources.cpu_period", res(func(r *runtimeapi.LinuxContainerResources) { r.CpuPeriod = 1 })},
		{"a unified key with ../", "../memory.max", res(func(r *runtimeapi.LinuxContainerResources) { r.Unified = map[string]string{"../memory.max": "1"} })},
		{"a hugepage size with ../", "hugepage_limits[0].page_size", res(func(r *runtimeapi.LinuxContainerResources) {
			r.HugepageLimits = []*runtimeapi.HugepageLimit{{PageSize: "../../2MB", Limit: 1 << 21}}
		})},
		{"run_as_group -1", "config.linux.security_context.run_as_group", func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{RunAsGroup: &runtimeapi.Int64Value{Value: -1}}
		}},
	}
	for i, tc := range ctrs {
		cfg := ctrConfig("bad", ref, "sleep", "1")
		cfg.Metadata.Attempt = uint32(i)
		tc.edit(cfg)
		_, err := d.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: good})
		expectInvalid("CreateContainer with "+tc.what, tc.field, err)
	}
	for _, r := range []*runtimeapi.LinuxContainerResources{{MemoryLimitInBytes: 1}, {CpuShares: math.MaxInt64}, {CpusetCpus: "9999"}, {OomScoreAdj: -5000}} {
		_, err := d.RT.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{ContainerId: ctrID, Linux: r})
		expectInvalid("UpdateContainerResources "+r.String(), "linux.", err)
	}

	// Nothing was made: the one pod and its one container, no other pod
	// dir, and the daemon serves them as before.
	pl, err := d.RT.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(pl.Items) != 1 || pl.Items[0].Id != podID {
		t.Fatalf("pods after the refused requests: %v %v", err, pl)
	}
	cl, err := d.RT.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil || len(cl.Containers) != 1 || cl.Containers[0].Id != ctrID {
		t.Fatalf("containers after the refused requests: %v %v", err, cl)
	}
	if st, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ctrID}); err != nil ||
		st.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("the good container after the refused requests: %v %v", err, st)
	}
	removePod(t, d, podID)
	assertDaemonClean(t, d)
}
