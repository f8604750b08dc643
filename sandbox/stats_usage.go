package sandbox

import "github.com/opencontainers/cgroups"

// unlimited says whether a memory limit is "none": v1 reports
// PAGE_COUNTER_MAX pages (9223372036854771712 with 4k pages) and v2 "max",
// which the library reads as MaxUint64. No real limit is near 2^62.
func unlimited(l uint64) bool { return l == 0 || l >= 1<<62 }

// usageFrom maps cgroup stats, as the cgroups library's GetStats or
// cgroupReader fill them, to CRI figures. The memory.stat keys differ: v1
// has total_* (hierarchical) keys and rss, v2 is always hierarchical and
// calls resident anonymous memory "anon". Working set is usage minus
// inactive file pages (cAdvisor's definition, which kubelet evicts on).
func usageFrom(st *cgroups.Stats, v2 bool) CgroupUsage {
	ms := st.MemoryStats
	u := CgroupUsage{CPUNanos: st.CpuStats.CpuUsage.TotalUsage, MemUsage: ms.Usage.Usage, Pids: st.PidsStats.Current}
	inactive := "total_inactive_file"
	if v2 {
		inactive = "inactive_file"
		u.RSS, u.PageFaults, u.MajorPageFaults = ms.Stats["anon"], ms.Stats["pgfault"], ms.Stats["pgmajfault"]
		if !unlimited(ms.Usage.Limit) {
			u.MemLimit = ms.Usage.Limit
		}
		// memory.swap.max is "max" or a number; no swap files: no figure.
		if ms.SwapOnlyUsage.Limit != 0 {
			u.HasSwap, u.SwapUsage = true, ms.SwapOnlyUsage.Usage
			if l := ms.SwapOnlyUsage.Limit; !unlimited(l) {
				u.SwapLimited = true
				if l > u.SwapUsage {
					u.SwapAvailable = l - u.SwapUsage
				}
			}
		}
	} else {
		u.RSS, u.PageFaults, u.MajorPageFaults = ms.Stats["total_rss"], ms.Stats["total_pgfault"], ms.Stats["total_pgmajfault"]
		if l := ms.Stats["hierarchical_memory_limit"]; !unlimited(l) {
			u.MemLimit = l
		}
		// hierarchical_memsw_limit is in memory.stat only when memsw
		// accounting is on; total_swap likewise.
		if msw, ok := ms.Stats["hierarchical_memsw_limit"]; ok {
			u.HasSwap, u.SwapUsage = true, ms.Stats["total_swap"]
			if !unlimited(msw) {
				u.SwapLimited = true
				if used := u.MemUsage + u.SwapUsage; msw > used {
					u.SwapAvailable = msw - used
				}
			}
		}
	}
	if in := ms.Stats[inactive]; u.MemUsage > in {
		u.WorkingSet = u.MemUsage - in
	}
	return u
}
