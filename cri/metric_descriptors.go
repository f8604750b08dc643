package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The metrics husk serves through ListPodSandboxMetrics, for kubelet's
// /metrics/cadvisor when it takes pod and container stats from the CRI
// (PodAndContainerStatsFromCRI). Names, help and label keys are
// cAdvisor's, as CRI-O serves them (internal/lib/stats/descriptors.go):
// every metric carries id, name and image, in that order, then its own
// keys. kubelet adds namespace, pod and container itself.
//
// Per container (ContainerMetrics; id = container id, name = container
// name, image = image name):
//
//	container_cpu_usage_seconds_total   counter  cpu="total"  cgroup CPU time, whole seconds
//	container_memory_usage_bytes        gauge                 memory.usage_in_bytes / memory.current
//	container_memory_working_set_bytes  gauge                 usage - inactive file
//	container_memory_rss                gauge                 total_rss / anon
//	container_memory_swap               gauge                 only where swap is accounted
//	container_spec_memory_limit_bytes   gauge                 0 when unlimited, as cAdvisor
//	container_fs_usage_bytes            gauge                 writable layer (upper dir) bytes
//
// Per pod (PodSandboxMetrics.metrics; id = pod id, name = "POD",
// image = "", as CRI-O labels the sandbox):
//
//	container_network_{receive,transmit}_{bytes,packets,errors,packets_dropped}_total
//	                                    counter  interface=<name>  /proc/<infra pid>/net/dev, all but lo
//	container_processes                 gauge                 pids.current of the pod cgroup
//
// CRI carries values as uint64, so the CPU seconds are truncated to whole
// seconds, as in CRI-O; usage_core_nano_seconds in the stats RPCs has the
// full resolution.
const (
	mCPUUsage  = "container_cpu_usage_seconds_total"
	mMemUsage  = "container_memory_usage_bytes"
	mMemWS     = "container_memory_working_set_bytes"
	mMemRSS    = "container_memory_rss"
	mMemSwap   = "container_memory_swap"
	mMemLimit  = "container_spec_memory_limit_bytes"
	mFsUsage   = "container_fs_usage_bytes"
	mRxBytes   = "container_network_receive_bytes_total"
	mRxPackets = "container_network_receive_packets_total"
	mRxErrors  = "container_network_receive_errors_total"
	mRxDropped = "container_network_receive_packets_dropped_total"
	mTxBytes   = "container_network_transmit_bytes_total"
	mTxPackets = "container_network_transmit_packets_total"
	mTxErrors  = "container_network_transmit_errors_total"
	mTxDropped = "container_network_transmit_packets_dropped_total"
	mProcesses = "container_processes"
)

var baseLabelKeys = []string{"id", "name", "image"}

func withKeys(extra ...string) []string {
	return append(append([]string(nil), baseLabelKeys...), extra...)
}

// metricDescriptors is the documented list above.
var metricDescriptors = []*runtimeapi.MetricDescriptor{
	{Name: mCPUUsage, Help: "Cumulative cpu time consumed in seconds.", LabelKeys: withKeys("cpu")},
	{Name: mMemUsage, Help: "Current memory usage in bytes, including all memory regardless of when it was accessed", LabelKeys: withKeys()},
	{Name: mMemWS, Help: "Current working set in bytes.", LabelKeys: withKeys()},
	{Name: mMemRSS, Help: "Size of RSS in bytes.", LabelKeys: withKeys()},
	{Name: mMemSwap, Help: "Container swap usage in bytes.", LabelKeys: withKeys()},
	{Name: mMemLimit, Help: "Memory limit for the container in bytes.", LabelKeys: withKeys()},
	{Name: mFsUsage, Help: "Current filesystem usage in bytes.", LabelKeys: withKeys()},
	{Name: mRxBytes, Help: "Cumulative count of bytes received", LabelKeys: withKeys("interface")},
	{Name: mRxPackets, Help: "Cumulative count of packets received", LabelKeys: withKeys("interface")},
	{Name: mRxErrors, Help: "Cumulative count of errors encountered while receiving", LabelKeys: withKeys("interface")},
	{Name: mRxDropped, Help: "Cumulative count of packets dropped while receiving", LabelKeys: withKeys("interface")},
	{Name: mTxBytes, Help: "Cumulative count of bytes transmitted", LabelKeys: withKeys("interface")},
	{Name: mTxPackets, Help: "Cumulative count of packets transmitted", LabelKeys: withKeys("interface")},
	{Name: mTxErrors, Help: "Cumulative count of errors encountered while transmitting", LabelKeys: withKeys("interface")},
	{Name: mTxDropped, Help: "Cumulative count of packets dropped while transmitting", LabelKeys: withKeys("interface")},
	{Name: mProcesses, Help: "Number of processes running inside the container.", LabelKeys: withKeys()},
}

// ListMetricDescriptors returns the descriptors of the metrics
// ListPodSandboxMetrics serves. CRI: the name is the identifier a Metric
// refers to, and a Metric's label values follow its descriptor's label
// keys in order.
func (s *Server) ListMetricDescriptors(ctx context.Context, req *runtimeapi.ListMetricDescriptorsRequest) (*runtimeapi.ListMetricDescriptorsResponse, error) {
	return &runtimeapi.ListMetricDescriptorsResponse{Descriptors: metricDescriptors}, nil
}
