package cri

import (
	"context"
	"time"

	"github.com/husk-runtime/husk/sandbox"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListPodSandboxMetrics returns the metrics of ListMetricDescriptors for
// every pod and its containers, from the same reads as
// ListPodSandboxStats. CRI: a Metric's timestamp "should be 0 if the
// metric was gathered live"; only the writable layer figure, which is
// cached (sandbox/stats.go), carries the time it was taken.
func (s *Server) ListPodSandboxMetrics(ctx context.Context, req *runtimeapi.ListPodSandboxMetricsRequest) (*runtimeapi.ListPodSandboxMetricsResponse, error) {
	return &runtimeapi.ListPodSandboxMetricsResponse{PodMetrics: s.listPodSandboxMetrics(ctx)}, nil
}

// listPodSandboxMetrics is the item list of ListPodSandboxMetrics and
// StreamPodSandboxMetrics.
func (s *Server) listPodSandboxMetrics(ctx context.Context) []*runtimeapi.PodSandboxMetrics {
	ms := s.Sandboxes.ListPodSandboxMetricsStats(ctx)
	now := time.Now()
	out := make([]*runtimeapi.PodSandboxMetrics, 0, len(ms.Pods))
	for _, st := range ms.Pods {
		out = append(out, podMetrics(st, ms, now))
	}
	return out
}

func podMetrics(st sandbox.PodStats, ms sandbox.MetricsStats, now time.Time) *runtimeapi.PodSandboxMetrics {
	pm := &runtimeapi.PodSandboxMetrics{PodSandboxId: st.Pod.ID}
	md := st.Pod.Config.GetMetadata()
	base := []string{st.Pod.ID, "", md.GetNamespace(), md.GetName(), "POD"}
	add := func(name string, t runtimeapi.MetricType, v uint64, extra ...string) {
		pm.Metrics = append(pm.Metrics, metric(name, t, v, 0, base, extra...))
	}
	if n := st.Network; n != nil {
		ifs := n.Interfaces
		if n.Default != nil {
			ifs = append([]sandbox.InterfaceUsage{*n.Default}, ifs...)
		}
		for _, i := range ifs {
			add(mRxBytes, runtimeapi.MetricType_COUNTER, i.RxBytes, i.Name)
			add(mRxPackets, runtimeapi.MetricType_COUNTER, i.RxPackets, i.Name)
			add(mRxErrors, runtimeapi.MetricType_COUNTER, i.RxErrors, i.Name)
			add(mRxDropped, runtimeapi.MetricType_COUNTER, i.RxDropped, i.Name)
			add(mTxBytes, runtimeapi.MetricType_COUNTER, i.TxBytes, i.Name)
			add(mTxPackets, runtimeapi.MetricType_COUNTER, i.TxPackets, i.Name)
			add(mTxErrors, runtimeapi.MetricType_COUNTER, i.TxErrors, i.Name)
			add(mTxDropped, runtimeapi.MetricType_COUNTER, i.TxDropped, i.Name)
		}
	}
	if u := st.Cgroup; u != nil {
		add(mProcesses, runtimeapi.MetricType_GAUGE, u.Pids)
	}
	for _, c := range st.Containers {
		pm.ContainerMetrics = append(pm.ContainerMetrics, containerMetrics(md, c, ms.Details[c.Container.ID], ms.Fs, now))
	}
	return pm
}

func containerMetrics(pod *runtimeapi.PodSandboxMetadata, st sandbox.ContainerStats, d *sandbox.CgroupDetail, fsu *sandbox.FsUsage, now time.Time) *runtimeapi.ContainerMetrics {
	c := st.Container
	cm := &runtimeapi.ContainerMetrics{ContainerId: c.ID}
	base := []string{c.ID, c.ImageName, pod.GetNamespace(), pod.GetName(), c.Config.GetMetadata().GetName()}
	add := func(name string, t runtimeapi.MetricType, v uint64, ts int64, extra ...string) {
		cm.Metrics = append(cm.Metrics, metric(name, t, v, ts, base, extra...))
	}
	if u := st.Cgroup; u != nil {
		add(mCPUUsage, runtimeapi.MetricType_COUNTER, u.CPUNanos/uint64(time.Second), 0, "total")
		add(mMemUsage, runtimeapi.MetricType_GAUGE, u.MemUsage, 0)
		add(mMemWS, runtimeapi.MetricType_GAUGE, u.WorkingSet, 0)
		add(mMemRSS, runtimeapi.MetricType_GAUGE, u.RSS, 0)
		// 0 where swap is not accounted, as cAdvisor reports it.
		add(mMemSwap, runtimeapi.MetricType_GAUGE, u.SwapUsage, 0)
		add(mMemLimit, runtimeapi.MetricType_GAUGE, u.MemLimit, 0)
		add(mLastSeen, runtimeapi.MetricType_GAUGE, uint64(now.Unix()), 0)
		if !c.StartedAt.IsZero() {
			add(mStartTime, runtimeapi.MetricType_GAUGE, uint64(c.StartedAt.Unix()), 0)
		}
	}
	if d != nil {
		const sec = uint64(time.Second)
		add(mCPUUser, runtimeapi.MetricType_COUNTER, d.CPUUserNanos/sec, 0)
		add(mCPUSystem, runtimeapi.MetricType_COUNTER, d.CPUSystemNanos/sec, 0)
		add(mCFSPeriods, runtimeapi.MetricType_COUNTER, d.CFSPeriods, 0)
		add(mCFSThrottled, runtimeapi.MetricType_COUNTER, d.CFSThrottledPeriods, 0)
		add(mCFSThrottleS, runtimeapi.MetricType_COUNTER, d.CFSThrottledNanos/sec, 0)
		add(mMemCache, runtimeapi.MetricType_GAUGE, d.MemCache, 0)
		add(mMemMapped, runtimeapi.MetricType_GAUGE, d.MemMappedFile, 0)
		add(mMemKernel, runtimeapi.MetricType_GAUGE, d.MemKernel, 0)
		add(mMemMax, runtimeapi.MetricType_GAUGE, d.MemMaxUsage, 0)
		add(mMemFailcnt, runtimeapi.MetricType_GAUGE, d.MemFailcnt, 0)
		add(mMemFailures, runtimeapi.MetricType_COUNTER, d.MemPgfault, 0, "pgfault", "container")
		add(mMemFailures, runtimeapi.MetricType_COUNTER, d.MemPgmajfault, 0, "pgmajfault", "container")
		add(mMemFailures, runtimeapi.MetricType_COUNTER, d.MemTotalPgfault, 0, "pgfault", "hierarchy")
		add(mMemFailures, runtimeapi.MetricType_COUNTER, d.MemTotalPgmajfault, 0, "pgmajfault", "hierarchy")
		add(mOOMEvents, runtimeapi.MetricType_COUNTER, d.OOMKills, 0)
		add(mSwapLimit, runtimeapi.MetricType_GAUGE, d.MemSwapLimit, 0)
		add(mCPUPeriod, runtimeapi.MetricType_GAUGE, d.CPUPeriod, 0)
		add(mCPUShares, runtimeapi.MetricType_GAUGE, d.CPUShares, 0)
		add(mThreads, runtimeapi.MetricType_GAUGE, d.Threads, 0)
		add(mThreadsMax, runtimeapi.MetricType_GAUGE, d.ThreadsMax, 0)
		add(mFds, runtimeapi.MetricType_GAUGE, d.FileDescriptors, 0)
		add(mSockets, runtimeapi.MetricType_GAUGE, d.Sockets, 0)
	}
	if l := st.Layer; l != nil {
		add(mFsUsage, runtimeapi.MetricType_GAUGE, l.Bytes, nanos(l.At))
		if fsu != nil {
			add(mFsLimit, runtimeapi.MetricType_GAUGE, fsu.LimitBytes, 0, fsu.Device)
			add(mFsInodes, runtimeapi.MetricType_GAUGE, fsu.InodesTotal, 0, fsu.Device)
			add(mFsInodesFree, runtimeapi.MetricType_GAUGE, fsu.InodesFree, 0, fsu.Device)
		}
	}
	return cm
}

func metric(name string, t runtimeapi.MetricType, v uint64, ts int64, base []string, extra ...string) *runtimeapi.Metric {
	labels := base
	if len(extra) > 0 {
		labels = append(append(make([]string, 0, len(base)+len(extra)), base...), extra...)
	}
	return &runtimeapi.Metric{Name: name, Timestamp: ts, MetricType: t, LabelValues: labels, Value: u64(v)}
}
