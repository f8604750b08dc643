package sandbox

// Stats: what CRI's ContainerStats, PodSandboxStats and their List forms
// report, read by the daemon itself from cgroupfs, /proc and the
// container's upper dir. No shim is asked and nothing is exec'd: kubelet
// asks for every container's stats every few seconds, so a list is a few
// file reads per container (see cgroupReader for exactly which).

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// CgroupUsage is what one cgroup read yields, in CRI's terms.
type CgroupUsage struct {
	At time.Time
	// CPUNanos is the cumulative CPU time (usage_core_nano_seconds).
	CPUNanos uint64
	// NanoCores is the CPU rate since the previous sample kept for the same
	// container or pod (usage_nano_cores); HasRate is false on the first
	// sample, so the field is left out rather than reported as 0.
	NanoCores uint64
	HasRate   bool

	MemUsage        uint64 // memory.usage_in_bytes / memory.current
	WorkingSet      uint64 // usage - inactive file pages, as cAdvisor and kubelet define it
	RSS             uint64 // total_rss (v1) / anon (v2)
	PageFaults      uint64
	MajorPageFaults uint64
	MemLimit        uint64 // 0: unlimited
	// Swap figures exist only where the kernel accounts swap for cgroups
	// (v1 memsw files, v2 memory.swap.*).
	HasSwap       bool
	SwapUsage     uint64
	SwapAvailable uint64 // 0 with SwapLimited false: unlimited
	SwapLimited   bool

	Pids uint64 // pids.current (read for pods only)

	// PSI is the cgroup's pressure stall information, nil where the
	// kernel has none for it (see cgroupReader.psi).
	PSI *Pressure
}

// Pressure is a cgroup's {cpu,memory,io}.pressure.
type Pressure struct {
	CPU, Memory, IO PressureLines
}

// PressureLines are a pressure file's "some" and "full" lines.
type PressureLines struct {
	Some, Full PressureData
}

// PressureData is one line: the averages in percent, the total stall in
// microseconds as the kernel writes it.
type PressureData struct {
	Avg10, Avg60, Avg300 float64
	TotalMicros          uint64
}

// Available is memory limit - working set, only when a limit is set.
func (u *CgroupUsage) Available() (uint64, bool) {
	if u.MemLimit == 0 {
		return 0, false
	}
	if u.WorkingSet >= u.MemLimit {
		return 0, true
	}
	return u.MemLimit - u.WorkingSet, true
}

// LayerUsage is the disk a container's writable layer (its overlay upper
// dir) takes: blocks allocated and inodes, hard links counted once.
type LayerUsage struct {
	At         time.Time
	Bytes      uint64
	Inodes     uint64
	Mountpoint string // where the upper dirs live, for kubelet's fs lookup
}

// InterfaceUsage is one line of /proc/<pid>/net/dev.
type InterfaceUsage struct {
	Name                                    string
	RxBytes, RxPackets, RxErrors, RxDropped uint64
	TxBytes, TxPackets, TxErrors, TxDropped uint64
}

// NetworkUsage is the pod's interfaces other than lo; Default is eth0, the
// interface CNI creates in the pod.
type NetworkUsage struct {
	At         time.Time
	Default    *InterfaceUsage
	Interfaces []InterfaceUsage // all but lo and the default
}

// DefaultInterface is the name CNI gives the pod's interface (CNI_IFNAME).
const DefaultInterface = "eth0"

// ContainerStats is one container's view and figures. Cgroup is nil when
// the container is not running or its cgroup is gone; Layer is nil when
// the container has no writable layer (read-only rootfs) or it is gone.
type ContainerStats struct {
	Container ContainerView
	Cgroup    *CgroupUsage
	Layer     *LayerUsage
}

// PodStats is a pod's view and figures: its cgroup (all its containers and
// the infra process), its network namespace and its containers.
type PodStats struct {
	Pod        PodView
	Cgroup     *CgroupUsage
	Network    *NetworkUsage // nil for host-network pods and pods without infra
	Containers []ContainerStats
}

// ContainerStats returns the figures of one container (id or unique
// prefix). A cgroup that cannot be read for another reason than being gone
// is an error here; in lists it is logged and the figure left out.
func (m *Manager) ContainerStats(ctx context.Context, id string) (ContainerStats, error) {
	c, err := m.container(id)
	if err != nil {
		return ContainerStats{}, err
	}
	m.mu.RLock()
	var podCgroup string
	if p := m.pods[c.PodID]; p != nil {
		podCgroup = p.Cgroup
	}
	m.mu.RUnlock()
	return m.containerStats(c, podCgroup)
}

// ListContainerStats returns the figures of every container for which keep
// says yes; keep sees the record first, so filtered-out containers cost no
// file read.
func (m *Manager) ListContainerStats(ctx context.Context, keep func(ContainerView) bool) []ContainerStats {
	type entry struct {
		c         *Container
		podCgroup string
	}
	m.mu.RLock()
	es := make([]entry, 0, len(m.ctrs))
	for _, c := range m.ctrs {
		var pc string
		if p := m.pods[c.PodID]; p != nil {
			pc = p.Cgroup
		}
		es = append(es, entry{c, pc})
	}
	m.mu.RUnlock()
	res := make([]*ContainerStats, len(es))
	parallel(len(es), func(i int) {
		st, err := m.containerStatsIf(es[i].c, es[i].podCgroup, keep)
		if err != nil {
			m.log.Warn("container stats", "container", es[i].c.ID, "error", err)
		}
		res[i] = st
	})
	out := make([]ContainerStats, 0, len(es))
	for _, st := range res {
		if st != nil {
			out = append(out, *st)
		}
	}
	m.stats.prune(m)
	return out
}

// parallel runs f(0..n-1) on up to GOMAXPROCS goroutines: a list is
// thousands of small file reads, each mostly syscall time, which spread
// over the cores.
func parallel(n int, f func(int)) {
	workers := min(runtime.GOMAXPROCS(0), (n+31)/32)
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

func (m *Manager) containerStats(c *Container, podCgroup string) (ContainerStats, error) {
	st, err := m.containerStatsIf(c, podCgroup, nil)
	if st == nil {
		return ContainerStats{}, err
	}
	return *st, err
}

// containerStatsIf reads a container's figures when keep (nil: all) takes
// it. Containers still being created are skipped, as ListContainers does.
func (m *Manager) containerStatsIf(c *Container, podCgroup string, keep func(ContainerView) bool) (*ContainerStats, error) {
	v := m.viewContainer(c)
	if v.State == ContainerCreating || (keep != nil && !keep(v)) {
		return nil, nil
	}
	st := &ContainerStats{Container: v}
	var errs []error
	// A created container already sits in its cgroup (runc init waits at
	// the exec fifo); an exited one's cgroup is destroyed.
	if (v.State == ContainerRunning || v.State == ContainerCreated) && podCgroup != "" {
		u, err := m.readUsage("c/"+v.ID, m.ctrCgroup(podCgroup, v.ID), false)
		if err != nil {
			errs = append(errs, fmt.Errorf("container %s: %w", v.ID, err))
		}
		st.Cgroup = u
	}
	l, err := m.stats.layer(v.ID, filepath.Join(m.paths.ContainerDir(v.PodID, v.ID), "upper"), m.paths.PodsDir())
	if err != nil {
		errs = append(errs, fmt.Errorf("container %s: %w", v.ID, err))
	}
	st.Layer = l
	return st, errors.Join(errs...)
}

// PodSandboxStats returns the figures of one pod (id or unique prefix).
func (m *Manager) PodSandboxStats(ctx context.Context, id string) (PodStats, error) {
	p, err := m.pod(id)
	if err != nil {
		return PodStats{}, err
	}
	st, err := m.podStatsIf(p, nil)
	if st == nil {
		return PodStats{}, err
	}
	return *st, err
}

// ListPodSandboxStats returns the figures of every pod for which keep says
// yes, and of their containers.
func (m *Manager) ListPodSandboxStats(ctx context.Context, keep func(PodView) bool) []PodStats {
	m.mu.RLock()
	pods := make([]*Pod, 0, len(m.pods))
	for _, p := range m.pods {
		pods = append(pods, p)
	}
	m.mu.RUnlock()
	res := make([]*PodStats, len(pods))
	parallel(len(pods), func(i int) {
		st, err := m.podStatsIf(pods[i], keep)
		if err != nil {
			m.log.Warn("pod sandbox stats", "pod", pods[i].ID, "error", err)
		}
		res[i] = st
	})
	out := make([]PodStats, 0, len(pods))
	for _, st := range res {
		if st != nil {
			out = append(out, *st)
		}
	}
	m.stats.prune(m)
	return out
}

func (m *Manager) podStatsIf(p *Pod, keep func(PodView) bool) (*PodStats, error) {
	v := m.viewPod(p)
	if v.State == PodCreating || (keep != nil && !keep(v)) {
		return nil, nil
	}
	st := &PodStats{Pod: v}
	var errs []error
	if v.Cgroup != "" && v.Ready {
		u, err := m.readUsage("p/"+v.ID, v.Cgroup, true)
		if err != nil {
			errs = append(errs, fmt.Errorf("pod %s: %w", v.ID, err))
		}
		st.Cgroup = u
	}
	if !v.HostNetwork && v.Ready && v.InfraPid > 0 {
		n, err := readPodNetwork(v.InfraPid, v.NetnsPath)
		if err != nil {
			errs = append(errs, fmt.Errorf("pod %s: %w", v.ID, err))
		}
		st.Network = n
	}
	for _, c := range m.podContainers(v.ID) {
		cs, err := m.containerStatsIf(c, v.Cgroup, nil)
		if err != nil {
			errs = append(errs, err)
		}
		if cs != nil {
			st.Containers = append(st.Containers, *cs)
		}
	}
	return st, errors.Join(errs...)
}

// readUsage reads a cgroup and works out the CPU rate against the sample
// kept under key. A cgroup that is gone (the container just exited) gives
// nil and no error.
func (m *Manager) readUsage(key, path string, pids bool) (*CgroupUsage, error) {
	r := m.cgr
	src := r.files.source(key)
	raw, err := r.readFrom(src, path, pids)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	u := usageFrom(raw, r.v2)
	u.PSI = r.pressureFrom(src, path)
	u.At = time.Now()
	m.stats.rate(key, &u)
	return &u, nil
}
