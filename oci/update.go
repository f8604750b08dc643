package oci

import (
	"fmt"

	"github.com/opencontainers/runc/libcontainer"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Update applies new resource limits to a container's cgroup, the way
// `runc update` does: only the fields given change.
func Update(root, id string, res *specs.LinuxResources) error {
	c, err := libcontainer.Load(root, id)
	if err != nil {
		return fmt.Errorf("update %s: load from %s: %w", id, root, err)
	}
	cfg := c.Config()
	r := cfg.Cgroups.Resources
	if m := res.Memory; m != nil {
		if m.Limit != nil {
			r.Memory = *m.Limit
		}
		if m.Swap != nil {
			r.MemorySwap = *m.Swap
		}
		if m.Reservation != nil {
			r.MemoryReservation = *m.Reservation
		}
	}
	if cpu := res.CPU; cpu != nil {
		if cpu.Shares != nil {
			r.CpuShares = *cpu.Shares
		}
		if cpu.Quota != nil {
			r.CpuQuota = *cpu.Quota
		}
		if cpu.Period != nil {
			r.CpuPeriod = *cpu.Period
		}
		if cpu.Cpus != "" {
			r.CpusetCpus = cpu.Cpus
		}
		if cpu.Mems != "" {
			r.CpusetMems = cpu.Mems
		}
	}
	if p := res.Pids; p != nil && p.Limit != nil {
		limit := *p.Limit
		r.PidsLimit = &limit
	}
	if len(res.Unified) > 0 {
		if r.Unified == nil {
			r.Unified = map[string]string{}
		}
		for k, v := range res.Unified {
			r.Unified[k] = v
		}
	}
	if err := c.Set(cfg); err != nil {
		return fmt.Errorf("update %s: set cgroup: %w", id, err)
	}
	return nil
}
