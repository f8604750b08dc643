package kubepod

import (
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The constants of kubelet's pkg/kubelet/cm/helpers_linux.go: the same
// requests and limits give the same cgroup values as under kubelet.
const (
	minShares      = 2
	maxShares      = 262144
	sharesPerCPU   = 1024
	milliCPUToCPU  = 1000
	quotaPeriod    = 100000 // µs, kubelet's default cpuCFSQuotaPeriod
	minQuotaPeriod = 1000

	guaranteedOOMScoreAdj = -997
	besteffortOOMScoreAdj = 1000
)

// milliCPUToShares is kubelet's cm.MilliCPUToShares.
func milliCPUToShares(milliCPU int64) int64 {
	if milliCPU == 0 {
		// Zero means unset, which the kernel would treat as 1024: kubelet
		// asks for the minimum instead.
		return minShares
	}
	shares := (milliCPU * sharesPerCPU) / milliCPUToCPU
	if shares < minShares {
		return minShares
	}
	if shares > maxShares {
		return maxShares
	}
	return shares
}

// milliCPUToQuota is kubelet's cm.MilliCPUToQuota.
func milliCPUToQuota(milliCPU, period int64) int64 {
	if milliCPU == 0 {
		return 0
	}
	quota := (milliCPU * period) / milliCPUToCPU
	if quota < minQuotaPeriod {
		quota = minQuotaPeriod
	}
	return quota
}

// defaultRequests does what the API server's defaulting does before
// kubelet ever sees a Pod: a resource with a limit and no request gets the
// limit as its request.
func defaultRequests(c *corev1.Container) {
	for name, q := range c.Resources.Limits {
		if _, ok := c.Resources.Requests[name]; ok {
			continue
		}
		if c.Resources.Requests == nil {
			c.Resources.Requests = corev1.ResourceList{}
		}
		c.Resources.Requests[name] = q.DeepCopy()
	}
}

// containerResources computes the LinuxContainerResources kubelet's
// generateLinuxContainerResources gives a container (with CFS quota on,
// kubelet's default, and the default 100ms period).
func containerResources(pod *corev1.Pod, c *corev1.Container, memoryCapacity int64) *runtimeapi.LinuxContainerResources {
	var cpuRequest, cpuLimit *resource.Quantity
	if q, ok := c.Resources.Requests[corev1.ResourceCPU]; ok {
		cpuRequest = &q
	}
	if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		cpuLimit = &q
	}
	r := &runtimeapi.LinuxContainerResources{}
	switch {
	case cpuRequest == nil && cpuLimit != nil:
		r.CpuShares = milliCPUToShares(cpuLimit.MilliValue())
	case cpuRequest != nil:
		r.CpuShares = milliCPUToShares(cpuRequest.MilliValue())
	default:
		r.CpuShares = minShares
	}
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok && q.Value() != 0 {
		r.MemoryLimitInBytes = q.Value()
	}
	r.CpuPeriod = quotaPeriod
	if cpuLimit != nil {
		r.CpuQuota = milliCPUToQuota(cpuLimit.MilliValue(), quotaPeriod)
	}
	if memoryCapacity > 0 {
		r.OomScoreAdj = oomScoreAdj(pod, c, memoryCapacity)
	}
	return r
}

// qosClass is a simplified v1qos.GetPodQOS over cpu and memory, the only
// resources husk pod run honours.
func qosClass(pod *corev1.Pod) corev1.PodQOSClass {
	some, guaranteed := false, true
	all := append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range all {
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[name]
			lim, hasLim := c.Resources.Limits[name]
			if (hasReq && !req.IsZero()) || (hasLim && !lim.IsZero()) {
				some = true
			}
			if !hasLim || lim.IsZero() || !hasReq || req.Cmp(lim) != 0 {
				guaranteed = false
			}
		}
	}
	switch {
	case !some:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

// oomScoreAdj is kubelet's qos.GetContainerOOMScoreAdjust without the
// node-critical and sidecar cases.
func oomScoreAdj(pod *corev1.Pod, c *corev1.Container, memoryCapacity int64) int64 {
	switch qosClass(pod) {
	case corev1.PodQOSGuaranteed:
		return guaranteedOOMScoreAdj
	case corev1.PodQOSBestEffort:
		return besteffortOOMScoreAdj
	}
	req := c.Resources.Requests.Memory().Value()
	adj := 1000 - (1000*req)/memoryCapacity
	if adj < 1000+guaranteedOOMScoreAdj {
		return 1000 + guaranteedOOMScoreAdj
	}
	if adj == besteffortOOMScoreAdj {
		return adj - 1
	}
	return adj
}

// resourceWarnings names the requests and limits husk pod run does not
// enforce: only cpu and memory become cgroup settings.
func (t *translator) resourceWarnings(c *corev1.Container, field string) {
	ws := &t.ws
	for _, kind := range []struct {
		name string
		list corev1.ResourceList
	}{{"requests", c.Resources.Requests}, {"limits", c.Resources.Limits}} {
		var names []string
		for n := range kind.list {
			if n != corev1.ResourceCPU && n != corev1.ResourceMemory {
				names = append(names, string(n))
			}
		}
		sort.Strings(names)
		for _, n := range names {
			ws.add(fmt.Sprintf("%s.resources.%s[%s]", field, kind.name, n), "only cpu and memory are enforced without a cluster; ignored")
		}
	}
	if len(c.Resources.Claims) > 0 {
		ws.add(field+".resources.claims", "resource claims need a cluster; ignored")
	}
}
