package kubepod

// Generate's reverse of resources.go: limits from the cgroup values,
// requests from cpu shares and, for memory, oom_score_adj.

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// resources reverses containerResources but for the memory request,
// which only oom_score_adj tells, for the whole pod (memoryRequests).
func (g *generator) resources(ctr string, r *runtimeapi.LinuxContainerResources) corev1.ResourceRequirements {
	var out corev1.ResourceRequirements
	if r == nil {
		g.note("container %s: its config has no resources; none are reproduced", ctr)
		return out
	}
	set := func(list *corev1.ResourceList, name corev1.ResourceName, q *resource.Quantity) {
		if *list == nil {
			*list = corev1.ResourceList{}
		}
		(*list)[name] = *q
	}
	period := r.CpuPeriod
	if period == 0 {
		period = quotaPeriod
	}
	var limit int64 // millicores
	if r.CpuQuota > 0 {
		limit = (r.CpuQuota*milliCPUToCPU + period - 1) / period
		if r.CpuQuota == minQuotaPeriod && period == quotaPeriod {
			// Any limit up to 10m gives the minimum quota: the one whose
			// shares are the container's is the likeliest (request =
			// limit), else 10m.
			for m := int64(1); m <= 10; m++ {
				if milliCPUToShares(m) == r.CpuShares {
					limit = m
				}
			}
		}
		if period != quotaPeriod || milliCPUToQuota(limit, quotaPeriod) != r.CpuQuota {
			g.note("container %s: cpu quota %dµs of %dµs is not reproduced exactly (Translate's period is %dµs)", ctr, r.CpuQuota, r.CpuPeriod, quotaPeriod)
		}
		set(&out.Limits, corev1.ResourceCPU, resource.NewMilliQuantity(limit, resource.DecimalSI))
	}
	switch {
	case limit > 0 && milliCPUToShares(limit) == r.CpuShares:
		set(&out.Requests, corev1.ResourceCPU, resource.NewMilliQuantity(limit, resource.DecimalSI))
	case r.CpuShares > minShares || (limit > 0 && r.CpuShares > 0):
		set(&out.Requests, corev1.ResourceCPU, resource.NewMilliQuantity(leastMilliCPU(r.CpuShares), resource.DecimalSI))
	}
	if r.MemoryLimitInBytes > 0 {
		set(&out.Limits, corev1.ResourceMemory, resource.NewQuantity(r.MemoryLimitInBytes, resource.BinarySI))
	}
	huge := false
	for _, h := range r.HugepageLimits {
		if h.Limit == 0 {
			continue
		}
		size := strings.TrimSuffix(h.PageSize, "B")
		if len(size) > 0 && strings.ContainsAny(size[len(size)-1:], "KMGT") {
			size += "i"
		}
		set(&out.Limits, corev1.ResourceName("hugepages-"+size), resource.NewQuantity(int64(h.Limit), resource.BinarySI))
		huge = true
	}
	if huge {
		g.note("container %s: its hugepage limits are in the manifest, but husk pod run does not enforce them", ctr)
	}
	if r.CpusetCpus != "" || r.CpusetMems != "" || len(r.Unified) > 0 || r.MemorySwapLimitInBytes != 0 {
		g.note("container %s: cpusets, swap and unified cgroup settings are not reproduced (a Pod cannot ask for them)", ctr)
	}
	return out
}

// leastMilliCPU is the least cpu request giving shares: shares are
// floor(milli·1024/1000), clamped (milliCPUToShares).
func leastMilliCPU(shares int64) int64 {
	switch {
	case shares <= minShares:
		return 0
	case shares >= maxShares:
		return maxShares * milliCPUToCPU / sharesPerCPU
	}
	return (shares*milliCPUToCPU + sharesPerCPU - 1) / sharesPerCPU
}

// memoryRequests gives each container the memory request its
// oom_score_adj says, under the pod's QoS class (which its
// oom_score_adj tells too): Guaranteed requests its limit, BestEffort
// nothing, and a Burstable container 1000 - 1000·request/capacity,
// clamped to 3..999 (oomScoreAdj). The request chosen is the roundest
// (in binary) that gives it, or the limit when that does.
func (g *generator) memoryRequests(ctrs []*corev1.Container, cfgs []*runtimeapi.ContainerConfig) {
	adj := make([]int64, len(cfgs))
	allIn := func(lo, hi int64) bool {
		for _, a := range adj {
			if a < lo || a > hi {
				return false
			}
		}
		return true
	}
	for i, cfg := range cfgs {
		adj[i] = cfg.GetLinux().GetResources().GetOomScoreAdj()
	}
	var qos corev1.PodQOSClass
	switch {
	case allIn(0, 0):
		return // translated without the node's memory: nothing to tell
	case allIn(guaranteedOOMScoreAdj, guaranteedOOMScoreAdj):
		qos = corev1.PodQOSGuaranteed
	case allIn(besteffortOOMScoreAdj, besteffortOOMScoreAdj):
		qos = corev1.PodQOSBestEffort
	case allIn(1000+guaranteedOOMScoreAdj, besteffortOOMScoreAdj-1):
		qos = corev1.PodQOSBurstable
	default:
		g.note("the containers' oom_score_adj %v fit no QoS class; memory requests are not reproduced", adj)
		return
	}
	capacity := g.opts.MemoryCapacity
	if qos == corev1.PodQOSBurstable && capacity <= 0 {
		g.note("the node's memory is not known: memory requests are not reproduced")
		return
	}
	setReq := func(c *corev1.Container, name corev1.ResourceName, q resource.Quantity) {
		if c.Resources.Requests == nil {
			c.Resources.Requests = corev1.ResourceList{}
		}
		c.Resources.Requests[name] = q
	}
	for i, c := range ctrs {
		lim, hasLim := c.Resources.Limits[corev1.ResourceMemory]
		switch qos {
		case corev1.PodQOSGuaranteed:
			if hasLim {
				setReq(c, corev1.ResourceMemory, lim)
			}
		case corev1.PodQOSBurstable:
			var l int64
			if hasLim {
				l = lim.Value()
			}
			// An explicit 0 keeps the limit from becoming the request.
			if v := memoryRequestFor(adj[i], capacity, l); v > 0 || hasLim {
				setReq(c, corev1.ResourceMemory, *resource.NewQuantity(v, resource.BinarySI))
			}
		}
	}
	if qos != corev1.PodQOSBurstable {
		return
	}
	switch g.qos() {
	case corev1.PodQOSBestEffort:
		// The pod's only requests were too small to show (shares 2,
		// oom_score_adj 999): one container gets a memory request that
		// still reads as 999.
		setReq(ctrs[0], corev1.ResourceMemory, *resource.NewQuantity(roundest(1, ceilDiv(2*capacity, 1000)), resource.BinarySI))
	case corev1.PodQOSGuaranteed:
		// Every request came back as its limit, where one was less: the
		// least request that gives the same cgroup values breaks the tie.
		for i, c := range ctrs {
			r := cfgs[i].GetLinux().GetResources()
			if req, ok := c.Resources.Requests[corev1.ResourceCPU]; ok && leastMilliCPU(r.CpuShares) < req.MilliValue() {
				setReq(c, corev1.ResourceCPU, *resource.NewMilliQuantity(leastMilliCPU(r.CpuShares), resource.DecimalSI))
				return
			}
			if req, ok := c.Resources.Requests[corev1.ResourceMemory]; ok {
				if lo, _ := memoryBucket(adj[i], capacity); lo < req.Value() {
					v := int64(0)
					if lo > 0 {
						v = roundest(lo, req.Value())
					}
					setReq(c, corev1.ResourceMemory, *resource.NewQuantity(v, resource.BinarySI))
					return
				}
			}
			// Any cpu limit to 10m gives the minimum quota: another one
			// (below the request only if the original's was, which
			// Translate accepts as the API server would not).
			if req, ok := c.Resources.Requests[corev1.ResourceCPU]; ok && r.CpuQuota == minQuotaPeriod && req.MilliValue() <= 10 {
				lim := int64(10)
				if req.MilliValue() == 10 {
					lim = 9
				}
				c.Resources.Limits[corev1.ResourceCPU] = *resource.NewMilliQuantity(lim, resource.DecimalSI)
				return
			}
		}
	}
}

// memoryBucket is the memory requests [lo, hi) that give a Burstable
// container oom_score_adj adj on a node of capacity bytes.
func memoryBucket(adj, capacity int64) (lo, hi int64) {
	switch k := 1000 - adj; {
	case adj >= besteffortOOMScoreAdj-1:
		return 0, ceilDiv(2*capacity, 1000)
	case adj <= 1000+guaranteedOOMScoreAdj:
		return ceilDiv(997*capacity, 1000), capacity + 1
	default:
		return ceilDiv(k*capacity, 1000), ceilDiv((k+1)*capacity, 1000)
	}
}

// memoryRequestFor is a memory request that gives a Burstable container
// oom_score_adj adj on a node of capacity bytes, limit being its memory
// limit (0: none).
func memoryRequestFor(adj, capacity, limit int64) int64 {
	lo, hi := memoryBucket(adj, capacity)
	if adj <= 1000+guaranteedOOMScoreAdj {
		hi = max(hi, limit+1) // any request past 99.7% of the node
	}
	switch {
	case limit > 0 && lo <= limit && limit < hi:
		return limit
	case lo == 0:
		return 0
	}
	return roundest(lo, max(hi, lo+1))
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// roundest is the number in [lo, hi) with the most trailing zero bits
// (lo > 0): a request written as 64Mi rather than 60129543.
func roundest(lo, hi int64) int64 {
	for shift := 62; shift >= 0; shift-- {
		m := int64(1) << shift
		if m >= hi {
			continue
		}
		v := lo
		if r := lo % m; r != 0 {
			v = lo - r + m
		}
		if v < hi {
			return v
		}
	}
	return lo
}

// qos is the QoS class Translate gives the generated pod.
func (g *generator) qos() corev1.PodQOSClass {
	p := g.pod.DeepCopy()
	for i := range p.Spec.InitContainers {
		defaultRequests(&p.Spec.InitContainers[i])
	}
	for i := range p.Spec.Containers {
		defaultRequests(&p.Spec.Containers[i])
	}
	return qosClass(p)
}

// checkResources translates the generated resources and notes the
// containers whose cgroup values differ from their configs'.
func (g *generator) checkResources(ctrs []*corev1.Container, cfgs []*runtimeapi.ContainerConfig) {
	p := g.pod.DeepCopy()
	for i := range p.Spec.InitContainers {
		defaultRequests(&p.Spec.InitContainers[i])
	}
	for i := range p.Spec.Containers {
		defaultRequests(&p.Spec.Containers[i])
	}
	for i, c := range ctrs {
		want := cfgs[i].GetLinux().GetResources()
		if want == nil {
			continue
		}
		capacity := g.opts.MemoryCapacity
		if want.OomScoreAdj == 0 {
			capacity = 0
		}
		cc := c.DeepCopy()
		defaultRequests(cc)
		got := containerResources(p, cc, capacity)
		if got.CpuShares != want.CpuShares || got.CpuQuota != want.CpuQuota || got.MemoryLimitInBytes != want.MemoryLimitInBytes ||
			got.OomScoreAdj != want.OomScoreAdj || (want.CpuPeriod != 0 && got.CpuPeriod != want.CpuPeriod) {
			g.note("container %s: its cgroup settings are not reproduced exactly: cpu shares %d, quota %d/%d, memory limit %d, oom_score_adj %d become %d, %d/%d, %d, %d",
				c.Name, want.CpuShares, want.CpuQuota, want.CpuPeriod, want.MemoryLimitInBytes, want.OomScoreAdj,
				got.CpuShares, got.CpuQuota, got.CpuPeriod, got.MemoryLimitInBytes, got.OomScoreAdj)
		}
	}
}
