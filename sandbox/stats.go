package sandbox

// Stats: what CRI's ContainerStats, PodSandboxStats and their List forms
// report, read by the daemon itself from cgroupfs, /proc and the
// container's upper dir. No shim is asked and nothing is exec'd: kubelet
// asks for every container's stats every few seconds, so a list is a few
// file reads per container (see cgroupReader for exactly which).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/husk-runtime/husk/hostcgroup"
	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
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
	m.statsCache().prune(m)
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
	m.refreshContainer(c)
	v := m.viewContainer(c)
	if v.State == ContainerCreating || (keep != nil && !keep(v)) {
		return nil, nil
	}
	st := &ContainerStats{Container: v}
	var errs []error
	// A created container already sits in its cgroup (runc init waits at
	// the exec fifo); an exited one's cgroup is destroyed.
	if (v.State == ContainerRunning || v.State == ContainerCreated) && podCgroup != "" {
		u, err := m.readUsage("c/"+v.ID, filepath.Join(podCgroup, v.ID), false)
		if err != nil {
			errs = append(errs, fmt.Errorf("container %s: %w", v.ID, err))
		}
		st.Cgroup = u
	}
	l, err := m.statsCache().layer(v.ID, filepath.Join(m.ctrDir(v.PodID, v.ID), "upper"), m.paths.PodsDir())
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
	m.statsCache().prune(m)
	return out
}

func (m *Manager) podStatsIf(p *Pod, keep func(PodView) bool) (*PodStats, error) {
	m.refreshInfra(p)
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
	raw, err := r.read(path, pids)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	u := usageFrom(raw, r.v2)
	u.PSI = r.readPressure(path)
	u.At = time.Now()
	m.statsCache().rate(key, &u)
	return &u, nil
}

// --- cgroup files ---------------------------------------------------------

// cgroupReader reads the few cgroup files the CRI figures need, straight
// from cgroupfs. The cgroups library's GetStats reads every controller (on
// a v1 host: ten hierarchies, some thirty files, the NUMA stats and
// per-CPU usage); measured in stats_test.go, it costs far more than these
// reads and would put a 500-container list well over its budget. The
// result is a *cgroups.Stats filled like GetStats fills it, so a single
// mapping (usageFrom) serves both, and a test checks the two agree.
//
// Files read per cgroup:
//
//	v1: cpuacct/<path>/cpuacct.usage            -> CpuUsage.TotalUsage
//	    memory/<path>/memory.usage_in_bytes     -> MemoryStats.Usage.Usage
//	    memory/<path>/memory.stat               -> MemoryStats.Stats (keys in v1Keys)
//	    pids/<path>/pids.current (pods only)    -> PidsStats.Current
//	v2: <path>/cpu.stat usage_usec              -> CpuUsage.TotalUsage (x1000)
//	    <path>/memory.current, memory.max       -> MemoryStats.Usage
//	    <path>/memory.stat                      -> MemoryStats.Stats (keys in v2Keys)
//	    <path>/memory.swap.current, .swap.max   -> MemoryStats.SwapOnlyUsage (when present)
//	    <path>/pids.current (pods only)         -> PidsStats.Current
//
// On v1 the limit and swap come from memory.stat too
// (hierarchical_memory_limit, hierarchical_memsw_limit, total_swap), which
// saves four more files: the hierarchical limit is the effective one (the
// smallest along the path), equal to memory.limit_in_bytes whenever the
// container has its own limit, and total_swap is memsw usage - usage.
//
// A host without a pids or cpuacct hierarchy (they are optional on v1, and
// a nested v2 node may not delegate pids) reads those figures as zero
// rather than failing every stats call.
type cgroupReader struct {
	v2                bool
	cpu, memory, pids string // where each controller's files are; "" where the host has none
	cpuCtl            string // the cpu controller's (v1: apart from cpuacct on some hosts), for readDetail
	// psi is where the {cpu,memory,io}.pressure files are: the cgroup2
	// mount, on a unified host and in hybrid mode alike. In hybrid mode
	// libcontainer's v1 manager makes every cgroup in the cgroup2
	// hierarchy too (0::/<path> in /proc/<pid>/cgroup), and the kernel
	// keeps pressure figures for it there, with psi=1 or
	// CONFIG_PSI_DEFAULT_DISABLED off. "" on a legacy host.
	psi string
}

func newCgroupReader(l *hostcgroup.Layout) *cgroupReader {
	dir := func(ctl string) string {
		d, _ := l.Dir(ctl) // "" where the host has no such controller
		return d
	}
	if l.Mode == hostcgroup.Unified {
		// cpu.stat's usage_usec is a core file, there with or without
		// the cpu controller.
		return &cgroupReader{v2: true, cpu: l.Unified, cpuCtl: l.Unified, memory: dir("memory"), pids: dir("pids"), psi: l.Unified}
	}
	return &cgroupReader{cpu: dir("cpuacct"), cpuCtl: dir("cpu"), memory: dir("memory"), pids: dir("pids"), psi: l.Unified}
}

// readPressure reads the cgroup's three pressure files; nil when the
// kernel keeps none for it (no cgroup2 mount, PSI off: the files are
// absent, or EOPNOTSUPP to read with psi=0 at boot).
func (r *cgroupReader) readPressure(path string) *Pressure {
	if r.psi == "" {
		return nil
	}
	dir := r.psi + filepath.Clean("/"+path)
	var p Pressure
	buf := make([]byte, 0, 256)
	for _, f := range []struct {
		name string
		into *PressureLines
	}{{"cpu.pressure", &p.CPU}, {"memory.pressure", &p.Memory}, {"io.pressure", &p.IO}} {
		b, err := readFile(filepath.Join(dir, f.name), &buf)
		if err != nil {
			return nil
		}
		*f.into = parsePressure(b)
	}
	return &p
}

// parsePressure parses "some avg10=0.00 avg60=0.00 avg300=0.00 total=0"
// and its "full" twin (absent from cpu.pressure before Linux 5.13: zero).
func parsePressure(b []byte) PressureLines {
	var l PressureLines
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		var d *PressureData
		switch f[0] {
		case "some":
			d = &l.Some
		case "full":
			d = &l.Full
		default:
			continue
		}
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "avg10":
				d.Avg10, _ = strconv.ParseFloat(v, 64)
			case "avg60":
				d.Avg60, _ = strconv.ParseFloat(v, 64)
			case "avg300":
				d.Avg300, _ = strconv.ParseFloat(v, 64)
			case "total":
				d.TotalMicros, _ = strconv.ParseUint(v, 10, 64)
			}
		}
	}
	return l
}

// The memory.stat keys the mapping uses; the rest are not kept.
var (
	v1Keys = []string{"total_inactive_file", "total_rss", "total_pgfault", "total_pgmajfault", "total_swap",
		"hierarchical_memory_limit", "hierarchical_memsw_limit"}
	v2Keys = []string{"inactive_file", "anon", "pgfault", "pgmajfault"}
)

func (r *cgroupReader) read(path string, pids bool) (*cgroups.Stats, error) {
	path = filepath.Clean("/" + path)
	st := &cgroups.Stats{MemoryStats: cgroups.MemoryStats{Stats: make(map[string]uint64, 8)}}
	var err error
	if r.v2 {
		dir := r.cpu + path
		if err = readKeys(dir, "cpu.stat", []string{"usage_usec"}, func(_ string, v uint64) {
			st.CpuStats.CpuUsage.TotalUsage = v * 1000
		}); err != nil {
			return nil, err
		}
		if r.memory != "" {
			if err := r.readMemoryV2(dir, st); err != nil {
				return nil, err
			}
		}
	} else {
		if r.cpu != "" {
			if st.CpuStats.CpuUsage.TotalUsage, err = readUint(r.cpu+path, "cpuacct.usage"); err != nil {
				return nil, err
			}
		}
		if r.memory != "" {
			mdir := r.memory + path
			if st.MemoryStats.Usage.Usage, err = readUint(mdir, "memory.usage_in_bytes"); err != nil {
				return nil, err
			}
			if err = readKeys(mdir, "memory.stat", v1Keys, keep(st.MemoryStats.Stats)); err != nil {
				return nil, err
			}
		}
	}
	if pids && r.pids != "" {
		if st.PidsStats.Current, err = readUint(r.pids+path, "pids.current"); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func (r *cgroupReader) readMemoryV2(dir string, st *cgroups.Stats) error {
	var err error
	if st.MemoryStats.Usage.Usage, err = readUint(dir, "memory.current"); err != nil {
		return err
	}
	if st.MemoryStats.Usage.Limit, err = readUint(dir, "memory.max"); err != nil {
		return err
	}
	if err = readKeys(dir, "memory.stat", v2Keys, keep(st.MemoryStats.Stats)); err != nil {
		return err
	}
	// No swap files: the kernel does not account swap (no
	// CONFIG_MEMCG_SWAP or swapaccount=0); GetStats leaves it zero too.
	if sw, err := readUint(dir, "memory.swap.current"); err == nil {
		st.MemoryStats.SwapOnlyUsage.Usage = sw
		if st.MemoryStats.SwapOnlyUsage.Limit, err = readUint(dir, "memory.swap.max"); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func keep(into map[string]uint64) func(string, uint64) {
	return func(k string, v uint64) { into[k] = v }
}

// readFile reads a small kernel file with one open/read/close into buf
// (cgroupfs and procfs files report size 0, so os.ReadFile's stat buys
// nothing) and returns the bytes read, which live in buf.
func readFile(path string, buf *[]byte) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	b := (*buf)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			*buf = b
			return b, nil
		}
		b = b[:len(b)+n]
	}
}

// bufs hold the read buffers: a list reads thousands of files.
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 8192); return &b }}

func readFileCopy(path string) ([]byte, error) {
	buf := bufs.Get().(*[]byte)
	defer bufs.Put(buf)
	b, err := readFile(path, buf)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), b...), nil
}

// parseUint parses decimal digits without the string conversion
// strconv would need.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// readUint reads a one-number file; "max" (v2 for no limit) reads as
// MaxUint64, as the cgroups library does.
func readUint(dir, file string) (uint64, error) {
	path := dir + "/" + file
	buf := bufs.Get().(*[]byte)
	defer bufs.Put(buf)
	b, err := readFile(path, buf)
	if err != nil {
		return 0, err
	}
	b = bytes.TrimSpace(b)
	if string(b) == "max" {
		return math.MaxUint64, nil
	}
	v, ok := parseUint(b)
	if !ok {
		return 0, fmt.Errorf("parse %s: %q is not a number", path, b)
	}
	return v, nil
}

// readKeys calls f for each "key value" line of a stat file whose key is
// one of keys (the line's key bytes are compared, not copied).
func readKeys(dir, file string, keys []string, f func(string, uint64)) error {
	path := dir + "/" + file
	buf := bufs.Get().(*[]byte)
	defer bufs.Put(buf)
	b, err := readFile(path, buf)
	if err != nil {
		return err
	}
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		k, v, ok := bytes.Cut(line, []byte{' '})
		if !ok {
			continue
		}
		for _, w := range keys {
			if string(k) == w {
				if n, ok := parseUint(v); ok {
					f(w, n)
				}
				break
			}
		}
	}
	return nil
}

// --- mapping --------------------------------------------------------------

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

// --- network --------------------------------------------------------------

// readPodNetwork reads the pod's interfaces from /proc/<infra pid>/net/dev,
// which shows the network namespace of that process: no setns needed. The
// infra pid is checked to still be in the pod's netns first, so a recycled
// pid never reports another namespace's traffic.
func readPodNetwork(pid int, netns string) (*NetworkUsage, error) {
	proc := "/proc/" + strconv.Itoa(pid)
	if netns != "" {
		var a, b unix.Stat_t
		if err := unix.Stat(proc+"/ns/net", &a); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return nil, nil // infra just exited
			}
			return nil, fmt.Errorf("stat %s/ns/net: %w", proc, err)
		}
		if err := unix.Stat(netns, &b); err != nil {
			return nil, fmt.Errorf("stat netns %s: %w", netns, err)
		}
		if a.Dev != b.Dev || a.Ino != b.Ino {
			return nil, nil
		}
	}
	b, err := readFileCopy(proc + "/net/dev")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ifs, err := parseNetDev(b)
	if err != nil {
		return nil, fmt.Errorf("parse %s/net/dev: %w", proc, err)
	}
	n := &NetworkUsage{At: time.Now()}
	for i := range ifs {
		switch ifs[i].Name {
		case "lo":
		case DefaultInterface:
			n.Default = &ifs[i]
		default:
			n.Interfaces = append(n.Interfaces, ifs[i])
		}
	}
	return n, nil
}

// parseNetDev parses /proc/net/dev: two header lines, then
// "name: rx bytes packets errs drop fifo frame compressed multicast
// tx bytes packets errs drop fifo colls carrier compressed".
func parseNetDev(b []byte) ([]InterfaceUsage, error) {
	var out []InterfaceUsage
	for i, line := range strings.Split(string(b), "\n") {
		if i < 2 || strings.TrimSpace(line) == "" {
			continue
		}
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %q has no interface name", line)
		}
		f := strings.Fields(rest)
		if len(f) < 16 {
			return nil, fmt.Errorf("line %q has %d fields, want 16", line, len(f))
		}
		var v [16]uint64
		for j := range v {
			n, err := strconv.ParseUint(f[j], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("line %q: %w", line, err)
			}
			v[j] = n
		}
		out = append(out, InterfaceUsage{Name: strings.TrimSpace(name),
			RxBytes: v[0], RxPackets: v[1], RxErrors: v[2], RxDropped: v[3],
			TxBytes: v[8], TxPackets: v[9], TxErrors: v[10], TxDropped: v[11]})
	}
	return out, nil
}

// --- in-memory state: CPU samples and writable-layer usage ----------------

// layerTTL is how long a writable layer figure is served before it is
// walked again. The walk runs in the background: a request gets the last
// figure at once, so a container with many files never slows a list down.
// Only a container's first figure is walked in the request, when its upper
// dir is new and so nearly empty.
const layerTTL = 2 * time.Second

// rateWindow is the shortest interval over which usage_nano_cores is
// computed: a sample newer than that is not kept as the next base, so two
// clients asking back to back (kubelet and a crictl user) do not turn the
// rate into the noise of a few milliseconds.
const rateWindow = time.Second

type cpuSample struct {
	nanos uint64
	at    time.Time
}

type layerEntry struct {
	usage      LayerUsage
	refreshing bool
}

type layerJob struct{ id, dir, mountpoint string }

type statsCache struct {
	mu     sync.Mutex
	cpu    map[string]cpuSample // "c/<ctr id>" or "p/<pod id>"
	layers map[string]*layerEntry
	jobs   chan layerJob
	once   sync.Once
}

// caches holds each manager's statsCache; the Manager struct is left as it
// is (it is another file's), and a process has one manager outside tests.
var caches sync.Map // *Manager -> *statsCache

func (m *Manager) statsCache() *statsCache {
	if v, ok := caches.Load(m); ok {
		return v.(*statsCache)
	}
	v, _ := caches.LoadOrStore(m, &statsCache{cpu: map[string]cpuSample{}, layers: map[string]*layerEntry{}})
	return v.(*statsCache)
}

// rate fills u's NanoCores from the kept sample and keeps u as the next
// base once it is rateWindow newer than the kept one.
func (s *statsCache) rate(key string, u *CgroupUsage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, ok := s.cpu[key]
	if ok {
		if dt := u.At.Sub(prev.at); dt > 0 && u.CPUNanos >= prev.nanos {
			u.NanoCores = uint64(float64(u.CPUNanos-prev.nanos) * 1e9 / float64(dt.Nanoseconds()))
			u.HasRate = true
		}
		if u.CPUNanos < prev.nanos {
			ok = false // counter went back: a new cgroup under the same name
		}
	}
	if !ok || u.At.Sub(prev.at) >= rateWindow {
		s.cpu[key] = cpuSample{u.CPUNanos, u.At}
	}
}

// prune drops the state of containers and pods the manager no longer has.
func (s *statsCache) prune(m *Manager) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.cpu {
		kind, id := k[:1], k[2:]
		if (kind == "c" && m.ctrs[id] == nil) || (kind == "p" && m.pods[id] == nil) {
			delete(s.cpu, k)
		}
	}
	for id := range s.layers {
		if m.ctrs[id] == nil {
			delete(s.layers, id)
		}
	}
}

// layer returns the writable layer usage of container id, whose upper dir
// is dir; nil when there is none.
func (s *statsCache) layer(id, dir, mountpoint string) (*LayerUsage, error) {
	s.mu.Lock()
	e := s.layers[id]
	if e != nil {
		u := e.usage
		if time.Since(u.At) >= layerTTL && !e.refreshing {
			s.once.Do(s.startWalker)
			select {
			case s.jobs <- layerJob{id, dir, mountpoint}:
				e.refreshing = true
			default: // walker busy: the next request asks again
			}
		}
		s.mu.Unlock()
		return &u, nil
	}
	s.mu.Unlock()
	u, err := walkLayer(dir, mountpoint)
	if err != nil || u == nil {
		return nil, err
	}
	s.mu.Lock()
	s.layers[id] = &layerEntry{usage: *u}
	s.mu.Unlock()
	return u, nil
}

// startWalker starts the one goroutine that refreshes stale layer figures:
// one at a time, so walks never take more than a core between them.
func (s *statsCache) startWalker() {
	s.jobs = make(chan layerJob, 1024)
	go func() {
		for j := range s.jobs {
			u, err := walkLayer(j.dir, j.mountpoint)
			s.mu.Lock()
			if e := s.layers[j.id]; e != nil {
				e.refreshing = false
				switch {
				case err == nil && u != nil:
					e.usage = *u
				case err == nil:
					delete(s.layers, j.id) // upper dir gone
				}
			}
			s.mu.Unlock()
		}
	}()
}

// walkLayer sums the blocks and counts the inodes under an upper dir, hard
// links once, as containerd's snapshotters and ImageFsInfo count. A
// missing dir is no layer (nil, nil); files vanishing mid-walk are skipped.
func walkLayer(dir, mountpoint string) (*LayerUsage, error) {
	type inode struct{ dev, ino uint64 }
	var seen map[inode]bool
	u := &LayerUsage{Mountpoint: mountpoint}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return nil
		}
		if st.Nlink > 1 && !d.IsDir() {
			if seen == nil {
				seen = map[inode]bool{}
			}
			k := inode{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		u.Bytes += uint64(st.Blocks) * 512
		u.Inodes++
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("writable layer usage of %s: %w", dir, err)
	}
	u.At = time.Now()
	return u, nil
}
