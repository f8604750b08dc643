package hostcgroup

import (
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Dropped is one limit of a container's resources that the host cannot
// apply.
type Dropped struct {
	Controller string // the cgroup controller it needs ("hugetlb", "cpuset", "swap" for swap accounting)
	Limit      string // what was dropped, for the warning ("hugepage_limits 2MB")
}

// Fit removes from r, in place, every limit this host cannot apply, and
// says what it removed. What it keeps, libcontainer can write: kubelet
// sends limits for every controller it knows of (hugepage limits of 0 for
// each page size, a swap limit, cpuset) whether or not the node has them,
// and runc fails a whole start on the first one it cannot write.
func (l *Layout) Fit(r *specs.LinuxResources) []Dropped {
	if r == nil {
		return nil
	}
	var out []Dropped
	drop := func(ctl, what string) { out = append(out, Dropped{Controller: ctl, Limit: what}) }

	if c := r.CPU; c != nil {
		if !l.Has("cpu") && (c.Shares != nil || c.Quota != nil || c.Period != nil || c.Burst != nil || c.Idle != nil ||
			c.RealtimeRuntime != nil || c.RealtimePeriod != nil) {
			drop("cpu", "cpu shares, quota and period")
			c.Shares, c.Quota, c.Period, c.Burst, c.Idle, c.RealtimeRuntime, c.RealtimePeriod = nil, nil, nil, nil, nil, nil, nil
		}
		if !l.Has("cpuset") && (c.Cpus != "" || c.Mems != "") {
			drop("cpuset", "cpuset cpus "+c.Cpus+" mems "+c.Mems)
			c.Cpus, c.Mems = "", ""
		}
	}
	if m := r.Memory; m != nil {
		switch {
		case !l.Has("memory"):
			drop("memory", "memory limit")
			r.Memory = nil
		case m.Swap != nil && !l.Swap:
			drop("swap", "memory swap limit")
			m.Swap = nil
		}
	}
	if r.Pids != nil && !l.Has("pids") {
		drop("pids", "pids limit")
		r.Pids = nil
	}
	if len(r.HugepageLimits) > 0 {
		if !l.Has("hugetlb") {
			sizes := make([]string, 0, len(r.HugepageLimits))
			for _, h := range r.HugepageLimits {
				sizes = append(sizes, h.Pagesize)
			}
			drop("hugetlb", "hugepage limits "+strings.Join(sizes, " "))
			r.HugepageLimits = nil
		} else {
			kept := r.HugepageLimits[:0]
			for _, h := range r.HugepageLimits {
				if slices.Contains(l.HugePageSizes, h.Pagesize) {
					kept = append(kept, h)
				} else {
					drop("hugetlb", "hugepage limit "+h.Pagesize+" (the kernel has no such page size)")
				}
			}
			r.HugepageLimits = kept
		}
	}
	if r.BlockIO != nil {
		ctl := "blkio"
		if l.Mode == Unified {
			ctl = "io"
		}
		if !l.Has(ctl) {
			drop(ctl, "block IO limits")
			r.BlockIO = nil
		}
	}
	if len(r.Rdma) > 0 && !l.Has("rdma") {
		drop("rdma", "rdma limits")
		r.Rdma = nil
	}
	if len(r.Unified) > 0 {
		keys := make([]string, 0, len(r.Unified))
		for k := range r.Unified {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			// libcontainer refuses unified keys on a v1 manager (hybrid
			// included); on a unified host a key is a file of its
			// controller ("memory.high"), or of the core ("cgroup.*").
			ctl, _, _ := strings.Cut(k, ".")
			if l.Mode != Unified {
				drop("unified", "unified "+k+" (no cgroup v2 manager on a "+string(l.Mode)+" host)")
				delete(r.Unified, k)
			} else if ctl != "cgroup" && !l.Has(ctl) {
				drop(ctl, "unified "+k)
				delete(r.Unified, k)
			}
		}
	}
	return out
}

// Warn logs each dropped limit's controller once per daemon: kubelet sends
// the same hugepage limits with every container, and one line saying the
// node has no hugetlb is what an operator needs.
func (l *Layout) Warn(log *slog.Logger, dropped []Dropped) {
	for _, d := range dropped {
		if l.warned.first(d.Controller) {
			log.Warn("this host cannot apply a container limit: dropped (logged once per controller)",
				"controller", d.Controller, "limit", d.Limit, "cgroups", l.String())
		}
	}
}

type warnOnce struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (w *warnOnce) first(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen[key] {
		return false
	}
	if w.seen == nil {
		w.seen = map[string]bool{}
	}
	w.seen[key] = true
	return true
}
