package cri

import (
	"context"
	"time"

	"github.com/husk-runtime/husk/sandbox"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerStats reports one container's resource usage. CRI: "If the
// container does not exist, the call returns an error" (NotFound here).
// The figures are read from the container's cgroup and upper dir by the
// daemon itself (sandbox/stats.go), never through the shim. A container
// that is not running has no CPU or memory figures, only its writable
// layer.
func (s *Server) ContainerStats(ctx context.Context, req *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("ContainerStats: container_id is required")
	}
	st, err := s.Sandboxes.ContainerStats(ctx, req.GetContainerId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.ContainerStatsResponse{Stats: containerStats(st)}, nil
}

// containerStats translates; ListContainerStats and the pod stats share it.
func containerStats(st sandbox.ContainerStats) *runtimeapi.ContainerStats {
	c := st.Container
	out := &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{
			Id: c.ID, Metadata: c.Config.GetMetadata(), Labels: c.Config.GetLabels(), Annotations: c.Config.GetAnnotations(),
		},
	}
	if u := st.Cgroup; u != nil {
		out.Cpu, out.Memory, out.Swap, out.Io = cpuUsage(u), memoryUsage(u), swapUsage(u), ioUsage(u)
	}
	if l := st.Layer; l != nil {
		out.WritableLayer = &runtimeapi.FilesystemUsage{
			Timestamp:  l.At.UnixNano(),
			FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: l.Mountpoint},
			UsedBytes:  u64(l.Bytes),
			InodesUsed: u64(l.Inodes),
		}
	}
	return out
}

// cpuUsage: usage_nano_cores is left unset on a first sample, so kubelet
// does not read a made-up 0 (it computes the rate itself when unset).
func cpuUsage(u *sandbox.CgroupUsage) *runtimeapi.CpuUsage {
	c := &runtimeapi.CpuUsage{Timestamp: u.At.UnixNano(), UsageCoreNanoSeconds: u64(u.CPUNanos)}
	if u.PSI != nil {
		c.Psi = psiStats(u.PSI.CPU)
	}
	if u.HasRate {
		c.UsageNanoCores = u64(u.NanoCores)
	}
	return c
}

// memoryUsage: available_bytes is CRI's "memory limit - workingSetBytes",
// so it is set only when there is a limit.
func memoryUsage(u *sandbox.CgroupUsage) *runtimeapi.MemoryUsage {
	m := &runtimeapi.MemoryUsage{
		Timestamp:       u.At.UnixNano(),
		WorkingSetBytes: u64(u.WorkingSet),
		UsageBytes:      u64(u.MemUsage),
		RssBytes:        u64(u.RSS),
		PageFaults:      u64(u.PageFaults),
		MajorPageFaults: u64(u.MajorPageFaults),
	}
	if a, ok := u.Available(); ok {
		m.AvailableBytes = u64(a)
	}
	if u.PSI != nil {
		m.Psi = psiStats(u.PSI.Memory)
	}
	return m
}

// ioUsage carries only the io pressure (the CRI's IoUsage has nothing
// else); nil where the kernel keeps none.
func ioUsage(u *sandbox.CgroupUsage) *runtimeapi.IoUsage {
	if u.PSI == nil {
		return nil
	}
	return &runtimeapi.IoUsage{Timestamp: u.At.UnixNano(), Psi: psiStats(u.PSI.IO)}
}

// psiStats: the CRI's Total is nanoseconds, the kernel's microseconds.
func psiStats(l sandbox.PressureLines) *runtimeapi.PsiStats {
	d := func(p sandbox.PressureData) *runtimeapi.PsiData {
		return &runtimeapi.PsiData{Total: p.TotalMicros * 1000, Avg10: p.Avg10, Avg60: p.Avg60, Avg300: p.Avg300}
	}
	return &runtimeapi.PsiStats{Some: d(l.Some), Full: d(l.Full)}
}

// swapUsage: only where the kernel accounts swap per cgroup; available
// only under a swap limit.
func swapUsage(u *sandbox.CgroupUsage) *runtimeapi.SwapUsage {
	if !u.HasSwap {
		return nil
	}
	s := &runtimeapi.SwapUsage{Timestamp: u.At.UnixNano(), SwapUsageBytes: u64(u.SwapUsage)}
	if u.SwapLimited {
		s.SwapAvailableBytes = u64(u.SwapAvailable)
	}
	return s
}

func u64(v uint64) *runtimeapi.UInt64Value { return &runtimeapi.UInt64Value{Value: v} }

func nanos(t time.Time) int64 { return t.UnixNano() }
