package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The metrics husk serves through ListPodSandboxMetrics, for kubelet's
// /metrics/cadvisor when it takes pod and container stats from the CRI
// (PodAndContainerStatsFromCRI). Names and help are cAdvisor's; the label
// keys are CRI-O's (internal/lib/statsserver/metrics.go): every metric
// carries id, image, namespace, pod and container, in that order, then its
// own keys. kubelet's CRI collector (pkg/kubelet/metrics/collectors/
// cri_metrics.go) exports the labels as given and adds none, so the
// Kubernetes names must come from here for a series to be found by pod, as
// cAdvisor's own labels let one. critest v1.37 checks that each of
// cAdvisor's names is described and has values.
//
// Per container (ContainerMetrics; id = container id, image = image name,
// namespace and pod = the pod's metadata, container = container name), from
// its cgroup (sandbox.CgroupUsage and
// sandbox.CgroupDetail say which files):
//
//	container_cpu_{usage,user,system}_seconds_total    counter  (usage: cpu="total")
//	container_cpu_cfs_{periods,throttled_periods}_total, _throttled_seconds_total  counter
//	container_memory_{usage_bytes,working_set_bytes,rss,swap,cache,mapped_file,
//	  kernel_usage,max_usage_bytes,failcnt}            gauge
//	container_memory_failures_total                    counter  failure_type=pgfault|pgmajfault, scope=container|hierarchy
//	container_oom_events_total                         counter
//	container_spec_{memory_limit_bytes,memory_swap_limit_bytes,cpu_period,cpu_shares}  gauge  (0: unlimited/unset)
//	container_threads, _threads_max, container_file_descriptors, container_sockets  gauge  (from its processes)
//	container_start_time_seconds, container_last_seen  gauge    unix seconds
//	container_fs_usage_bytes                           gauge    writable layer (upper dir) bytes
//	container_fs_{limit_bytes,inodes_total,inodes_free}  gauge  device=<fs of the writable layers>
//	container_fs_{reads,writes}{,_bytes}_total, container_blkio_device_usage_total
//	                                                   described, no values: husk does not read
//	                                                   blkio (critest counts them optional)
//
// Per pod (PodSandboxMetrics.metrics; id = pod id, image = "",
// container = "POD", as cAdvisor and CRI-O label the sandbox):
//
//	container_network_{receive,transmit}_{bytes,packets,errors,packets_dropped}_total
//	                                    counter  interface=<name>  /proc/<infra pid>/net/dev, all but lo
//	container_processes                 gauge                 pids.current of the pod cgroup
//
// CRI carries values as uint64, so seconds are truncated to whole seconds,
// as in CRI-O; usage_core_nano_seconds in the stats RPCs has the full
// resolution.
const (
	mCPUUsage     = "container_cpu_usage_seconds_total"
	mCPUUser      = "container_cpu_user_seconds_total"
	mCPUSystem    = "container_cpu_system_seconds_total"
	mCFSPeriods   = "container_cpu_cfs_periods_total"
	mCFSThrottled = "container_cpu_cfs_throttled_periods_total"
	mCFSThrottleS = "container_cpu_cfs_throttled_seconds_total"
	mMemUsage     = "container_memory_usage_bytes"
	mMemWS        = "container_memory_working_set_bytes"
	mMemRSS       = "container_memory_rss"
	mMemSwap      = "container_memory_swap"
	mMemCache     = "container_memory_cache"
	mMemMapped    = "container_memory_mapped_file"
	mMemKernel    = "container_memory_kernel_usage"
	mMemMax       = "container_memory_max_usage_bytes"
	mMemFailcnt   = "container_memory_failcnt"
	mMemFailures  = "container_memory_failures_total"
	mOOMEvents    = "container_oom_events_total"
	mMemLimit     = "container_spec_memory_limit_bytes"
	mSwapLimit    = "container_spec_memory_swap_limit_bytes"
	mCPUPeriod    = "container_spec_cpu_period"
	mCPUShares    = "container_spec_cpu_shares"
	mThreads      = "container_threads"
	mThreadsMax   = "container_threads_max"
	mFds          = "container_file_descriptors"
	mSockets      = "container_sockets"
	mStartTime    = "container_start_time_seconds"
	mLastSeen     = "container_last_seen"
	mFsUsage      = "container_fs_usage_bytes"
	mFsLimit      = "container_fs_limit_bytes"
	mFsInodes     = "container_fs_inodes_total"
	mFsInodesFree = "container_fs_inodes_free"
	mFsReads      = "container_fs_reads_total"
	mFsReadBytes  = "container_fs_reads_bytes_total"
	mFsWrites     = "container_fs_writes_total"
	mFsWriteBytes = "container_fs_writes_bytes_total"
	mBlkio        = "container_blkio_device_usage_total"
	mRxBytes      = "container_network_receive_bytes_total"
	mRxPackets    = "container_network_receive_packets_total"
	mRxErrors     = "container_network_receive_errors_total"
	mRxDropped    = "container_network_receive_packets_dropped_total"
	mTxBytes      = "container_network_transmit_bytes_total"
	mTxPackets    = "container_network_transmit_packets_total"
	mTxErrors     = "container_network_transmit_errors_total"
	mTxDropped    = "container_network_transmit_packets_dropped_total"
	mProcesses    = "container_processes"
)

var baseLabelKeys = []string{"id", "image", "namespace", "pod", "container"}

func withKeys(extra ...string) []string {
	return append(append([]string(nil), baseLabelKeys...), extra...)
}

// metricDescriptors is the documented list above; help texts are
// cAdvisor's.
var metricDescriptors = []*runtimeapi.MetricDescriptor{
	{Name: mCPUUsage, Help: "Cumulative cpu time consumed in seconds.", LabelKeys: withKeys("cpu")},
	{Name: mCPUUser, Help: "Cumulative user cpu time consumed in seconds.", LabelKeys: withKeys()},
	{Name: mCPUSystem, Help: "Cumulative system cpu time consumed in seconds.", LabelKeys: withKeys()},
	{Name: mCFSPeriods, Help: "Number of elapsed enforcement period intervals.", LabelKeys: withKeys()},
	{Name: mCFSThrottled, Help: "Number of throttled period intervals.", LabelKeys: withKeys()},
	{Name: mCFSThrottleS, Help: "Total time duration the container has been throttled.", LabelKeys: withKeys()},
	{Name: mMemUsage, Help: "Current memory usage in bytes, including all memory regardless of when it was accessed", LabelKeys: withKeys()},
	{Name: mMemWS, Help: "Current working set in bytes.", LabelKeys: withKeys()},
	{Name: mMemRSS, Help: "Size of RSS in bytes.", LabelKeys: withKeys()},
	{Name: mMemSwap, Help: "Container swap usage in bytes.", LabelKeys: withKeys()},
	{Name: mMemCache, Help: "Number of bytes of page cache memory.", LabelKeys: withKeys()},
	{Name: mMemMapped, Help: "Size of memory mapped files in bytes.", LabelKeys: withKeys()},
	{Name: mMemKernel, Help: "Size of kernel memory allocated in bytes.", LabelKeys: withKeys()},
	{Name: mMemMax, Help: "Maximum memory usage recorded in bytes", LabelKeys: withKeys()},
	{Name: mMemFailcnt, Help: "Number of memory usage hits limits", LabelKeys: withKeys()},
	{Name: mMemFailures, Help: "Cumulative count of memory allocation failures.", LabelKeys: withKeys("failure_type", "scope")},
	{Name: mOOMEvents, Help: "Count of out of memory events observed for the container", LabelKeys: withKeys()},
	{Name: mMemLimit, Help: "Memory limit for the container in bytes.", LabelKeys: withKeys()},
	{Name: mSwapLimit, Help: "Memory swap limit for the container.", LabelKeys: withKeys()},
	{Name: mCPUPeriod, Help: "CPU period of the container.", LabelKeys: withKeys()},
	{Name: mCPUShares, Help: "CPU share of the container.", LabelKeys: withKeys()},
	{Name: mThreads, Help: "Number of threads running inside the container", LabelKeys: withKeys()},
	{Name: mThreadsMax, Help: "Maximum number of threads allowed inside the container, infinity if value is zero", LabelKeys: withKeys()},
	{Name: mFds, Help: "Number of open file descriptors for the container.", LabelKeys: withKeys()},
	{Name: mSockets, Help: "Number of open sockets for the container.", LabelKeys: withKeys()},
	{Name: mStartTime, Help: "Start time of the container since unix epoch in seconds.", LabelKeys: withKeys()},
	{Name: mLastSeen, Help: "Last time a container was seen by the exporter", LabelKeys: withKeys()},
	{Name: mFsUsage, Help: "Current filesystem usage in bytes.", LabelKeys: withKeys()},
	{Name: mFsLimit, Help: "Number of bytes that can be consumed by the container on this filesystem.", LabelKeys: withKeys("device")},
	{Name: mFsInodes, Help: "Number of available Inodes", LabelKeys: withKeys("device")},
	{Name: mFsInodesFree, Help: "Number of available Inodes", LabelKeys: withKeys("device")},
	{Name: mFsReads, Help: "Cumulative count of reads completed", LabelKeys: withKeys("device")},
	{Name: mFsReadBytes, Help: "Cumulative count of bytes read", LabelKeys: withKeys("device")},
	{Name: mFsWrites, Help: "Cumulative count of writes completed", LabelKeys: withKeys("device")},
	{Name: mFsWriteBytes, Help: "Cumulative count of bytes written", LabelKeys: withKeys("device")},
	{Name: mBlkio, Help: "Blkio Device bytes usage", LabelKeys: withKeys("device", "major", "minor", "operation")},
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
