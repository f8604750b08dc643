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
	list := s.Sandboxes.ListPodSandboxStats(ctx, nil)
	out := make([]*runtimeapi.PodSandboxMetrics, 0, len(list))
	for _, st := range list {
		out = append(out, podMetrics(st))
	}
	return out
}

func podMetrics(st sandbox.PodStats) *runtimeapi.PodSandboxMetrics {
	pm := &runtimeapi.PodSandboxMetrics{PodSandboxId: st.Pod.ID}
	base := []string{st.Pod.ID, "POD", ""}
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
		pm.ContainerMetrics = append(pm.ContainerMetrics, containerMetrics(c))
	}
	return pm
}

func containerMetrics(st sandbox.ContainerStats) *runtimeapi.ContainerMetrics {
	c := st.Container
	cm := &runtimeapi.ContainerMetrics{ContainerId: c.ID}
	base := []string{c.ID, c.Config.GetMetadata().GetName(), c.ImageName}
	add := func(name string, t runtimeapi.MetricType, v uint64, ts int64, extra ...string) {
		cm.Metrics = append(cm.Metrics, metric(name, t, v, ts, base, extra...))
	}
	if u := st.Cgroup; u != nil {
		add(mCPUUsage, runtimeapi.MetricType_COUNTER, u.CPUNanos/uint64(time.Second), 0, "total")
		add(mMemUsage, runtimeapi.MetricType_GAUGE, u.MemUsage, 0)
		add(mMemWS, runtimeapi.MetricType_GAUGE, u.WorkingSet, 0)
		add(mMemRSS, runtimeapi.MetricType_GAUGE, u.RSS, 0)
		if u.HasSwap {
			add(mMemSwap, runtimeapi.MetricType_GAUGE, u.SwapUsage, 0)
		}
		add(mMemLimit, runtimeapi.MetricType_GAUGE, u.MemLimit, 0)
	}
	if l := st.Layer; l != nil {
		add(mFsUsage, runtimeapi.MetricType_GAUGE, l.Bytes, nanos(l.At))
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
