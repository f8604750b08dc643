package cri

import (
	"context"

	"github.com/husk-runtime/husk/sandbox"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PodSandboxStats reports a pod's usage. CRI: "If the pod sandbox does not
// exist, the call returns an error" (NotFound here). The Linux stats carry
// the pod cgroup's CPU and memory (every container and the infra process
// together), the pod's network (eth0 inside its netns; not reported for
// host-network pods, whose traffic is the node's), its process count, and
// each container's stats.
func (s *Server) PodSandboxStats(ctx context.Context, req *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, invalid("PodSandboxStats: pod_sandbox_id is required")
	}
	st, err := s.Sandboxes.PodSandboxStats(ctx, req.GetPodSandboxId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: podSandboxStats(st)}, nil
}

func podSandboxStats(st sandbox.PodStats) *runtimeapi.PodSandboxStats {
	p := st.Pod
	lx := &runtimeapi.LinuxPodSandboxStats{}
	if u := st.Cgroup; u != nil {
		lx.Cpu, lx.Memory, lx.Io = cpuUsage(u), memoryUsage(u), ioUsage(u)
		lx.Process = &runtimeapi.ProcessUsage{Timestamp: nanos(u.At), ProcessCount: u64(u.Pids)}
	}
	if n := st.Network; n != nil {
		lx.Network = &runtimeapi.NetworkUsage{Timestamp: nanos(n.At)}
		// interfaces lists every interface, the default one included, as
		// containerd and CRI-O list them; kubelet's summary takes both.
		if n.Default != nil {
			lx.Network.DefaultInterface = interfaceUsage(n.Default)
			lx.Network.Interfaces = append(lx.Network.Interfaces, interfaceUsage(n.Default))
		}
		for i := range n.Interfaces {
			lx.Network.Interfaces = append(lx.Network.Interfaces, interfaceUsage(&n.Interfaces[i]))
		}
	}
	for _, c := range st.Containers {
		lx.Containers = append(lx.Containers, containerStats(c))
	}
	return &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{
			Id: p.ID, Metadata: p.Config.GetMetadata(), Labels: p.Config.GetLabels(), Annotations: p.Config.GetAnnotations(),
		},
		Linux: lx,
	}
}

func interfaceUsage(i *sandbox.InterfaceUsage) *runtimeapi.NetworkInterfaceUsage {
	return &runtimeapi.NetworkInterfaceUsage{Name: i.Name, RxBytes: u64(i.RxBytes), RxErrors: u64(i.RxErrors),
		TxBytes: u64(i.TxBytes), TxErrors: u64(i.TxErrors)}
}
