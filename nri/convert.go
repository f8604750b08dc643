package nri

import (
	"maps"

	"github.com/containerd/nri/pkg/api"
	"github.com/husk-runtime/husk/sandbox"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podToNRI is a pod as NRI describes it.
func podToNRI(v sandbox.PodView) *api.PodSandbox {
	md := v.Config.GetMetadata()
	p := &api.PodSandbox{
		Id: v.ID, Name: md.GetName(), Uid: md.GetUid(), Namespace: md.GetNamespace(),
		Labels: v.Config.GetLabels(), Annotations: v.Config.GetAnnotations(),
		RuntimeHandler: v.Handler, Pid: uint32(max(v.InfraPid, 0)), Ips: v.IPs,
		Linux: &api.LinuxPodSandbox{
			CgroupParent: v.Config.GetLinux().GetCgroupParent(),
			CgroupsPath:  v.Cgroup,
		},
	}
	if res := v.Config.GetLinux().GetResources(); res != nil {
		p.Linux.PodResources = resourcesToNRI(res)
	}
	if res := v.Config.GetLinux().GetOverhead(); res != nil {
		p.Linux.PodOverhead = resourcesToNRI(res)
	}
	if v.NetnsPath != "" {
		p.Linux.Namespaces = []*api.LinuxNamespace{{Type: string(specs.NetworkNamespace), Path: v.NetnsPath}}
	}
	return p
}

// containerToNRI is a container as NRI describes it: its identity and
// state from the record, what it runs with from its spec.
func containerToNRI(v sandbox.ContainerView, spec *specs.Spec) *api.Container {
	c := &api.Container{
		Id: v.ID, PodSandboxId: v.PodID, Name: v.Config.GetMetadata().GetName(),
		State:        stateToNRI(v.State),
		Labels:       v.Config.GetLabels(),
		Annotations:  v.Config.GetAnnotations(),
		Pid:          uint32(max(v.Pid, 0)),
		CreatedAt:    unixNano(v.CreatedAt.UnixNano(), v.CreatedAt.IsZero()),
		StartedAt:    unixNano(v.StartedAt.UnixNano(), v.StartedAt.IsZero()),
		StatusReason: v.Reason,
	}
	if v.Exit != nil {
		c.ExitCode = int32(v.Exit.Code)
		c.FinishedAt = unixNano(v.Exit.FinishedAt.UnixNano(), v.Exit.FinishedAt.IsZero())
	}
	if spec == nil {
		return c
	}
	if len(spec.Annotations) > 0 {
		// What runs is the spec's: plugins' adjustments included.
		c.Annotations = spec.Annotations
	}
	if pr := spec.Process; pr != nil {
		c.Args, c.Env = pr.Args, pr.Env
		c.Rlimits = rlimitsToNRI(pr.Rlimits)
		c.User = &api.User{Uid: pr.User.UID, Gid: pr.User.GID, AdditionalGids: pr.User.AdditionalGids}
	}
	c.Mounts = api.FromOCIMounts(spec.Mounts)
	c.Hooks = api.FromOCIHooks(spec.Hooks)
	if l := spec.Linux; l != nil {
		c.Linux = &api.LinuxContainer{
			Namespaces:  api.FromOCILinuxNamespaces(l.Namespaces),
			Devices:     api.FromOCILinuxDevices(l.Devices),
			Resources:   api.FromOCILinuxResources(l.Resources, nil),
			CgroupsPath: l.CgroupsPath,
			Sysctl:      l.Sysctl,
		}
		if pr := spec.Process; pr != nil && pr.OOMScoreAdj != nil {
			c.Linux.OomScoreAdj = api.Int(*pr.OOMScoreAdj)
		}
		if l.Seccomp != nil {
			c.Linux.SeccompPolicy = api.FromOCILinuxSeccomp(l.Seccomp)
		}
	}
	return c
}

func unixNano(ns int64, zero bool) int64 {
	if zero {
		return 0
	}
	return ns
}

func stateToNRI(s sandbox.ContainerState) api.ContainerState {
	switch s {
	case sandbox.ContainerCreating, sandbox.ContainerCreated:
		return api.ContainerState_CONTAINER_CREATED
	case sandbox.ContainerRunning:
		return api.ContainerState_CONTAINER_RUNNING
	case sandbox.ContainerExited:
		return api.ContainerState_CONTAINER_STOPPED
	}
	return api.ContainerState_CONTAINER_UNKNOWN
}

func rlimitsToNRI(in []specs.POSIXRlimit) []*api.POSIXRlimit {
	var out []*api.POSIXRlimit
	for _, r := range in {
		out = append(out, &api.POSIXRlimit{Type: r.Type, Hard: r.Hard, Soft: r.Soft})
	}
	return out
}

// resourcesToNRI is CRI's resources as NRI has them, by way of the OCI
// resources husk writes for them.
func resourcesToNRI(res *runtimeapi.LinuxContainerResources) *api.LinuxResources {
	return api.FromOCILinuxResources(sandbox.OCIResources(res), nil)
}

// mergeResources is base (nil: none) with what n sets put over it, as CRI
// resources, the form the manager applies. NRI resources CRI has no field
// for (block I/O and RDT classes, pids, device rules) are not applied by an
// update, as kubelet's in-place resize has none either.
func mergeResources(base *runtimeapi.LinuxContainerResources, n *api.LinuxResources) *runtimeapi.LinuxContainerResources {
	out := &runtimeapi.LinuxContainerResources{}
	if base != nil {
		out = proto.Clone(base).(*runtimeapi.LinuxContainerResources)
	}
	if n == nil {
		return out
	}
	if m := n.GetMemory(); m != nil {
		if v := m.GetLimit(); v != nil {
			out.MemoryLimitInBytes = v.GetValue()
		}
		if v := m.GetSwap(); v != nil {
			out.MemorySwapLimitInBytes = v.GetValue()
		}
	}
	if c := n.GetCpu(); c != nil {
		if v := c.GetShares(); v != nil {
			out.CpuShares = int64(v.GetValue())
		}
		if v := c.GetQuota(); v != nil {
			out.CpuQuota = v.GetValue()
		}
		if v := c.GetPeriod(); v != nil {
			out.CpuPeriod = int64(v.GetValue())
		}
		if c.GetCpus() != "" {
			out.CpusetCpus = c.GetCpus()
		}
		if c.GetMems() != "" {
			out.CpusetMems = c.GetMems()
		}
	}
	for _, h := range n.GetHugepageLimits() {
		replaced := false
		for _, o := range out.HugepageLimits {
			if o.GetPageSize() == h.GetPageSize() {
				o.Limit, replaced = h.GetLimit(), true
			}
		}
		if !replaced {
			out.HugepageLimits = append(out.HugepageLimits, &runtimeapi.HugepageLimit{PageSize: h.GetPageSize(), Limit: h.GetLimit()})
		}
	}
	if len(n.GetUnified()) > 0 {
		if out.Unified == nil {
			out.Unified = map[string]string{}
		}
		maps.Copy(out.Unified, n.GetUnified())
	}
	return out
}
