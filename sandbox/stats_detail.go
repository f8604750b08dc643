package sandbox

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// CgroupDetail is what cAdvisor's container metrics need beyond
// CgroupUsage. It is read only for ListPodSandboxMetrics (kubelet's
// /metrics/cadvisor, scraped every few seconds at most), never for the
// stats lists kubelet polls: a dozen more files and a walk of the
// container's /proc entries per container.
//
//	v1                                         v2
//	cpuacct.stat user/system (USER_HZ ticks)   cpu.stat user_usec/system_usec
//	cpu/cpu.stat nr_periods, nr_throttled,     cpu.stat nr_periods, nr_throttled,
//	  throttled_time (ns)                        throttled_usec
//	cpu/cpu.cfs_period_us, cpu.shares          cpu.max (period), cpu.weight (as shares)
//	memory.stat total_cache, total_mapped_file memory.stat file, file_mapped, kernel
//	memory.kmem.usage_in_bytes                 (memory.stat kernel)
//	memory.max_usage_in_bytes, memory.failcnt  memory.peak (5.19+), memory.events max
//	memory.oom_control oom_kill                memory.events oom_kill
//	memory.memsw.limit_in_bytes                memory.swap.max
//	pids.max                                   pids.max
//	tasks, cgroup.procs -> /proc/<pid>/fd      cgroup.threads, cgroup.procs
//
// A file the host lacks (no memory.peak before 5.19, no pids controller)
// leaves its figure at zero.
type CgroupDetail struct {
	CPUUserNanos, CPUSystemNanos                       uint64
	CFSPeriods, CFSThrottledPeriods, CFSThrottledNanos uint64
	CPUPeriod, CPUShares                               uint64 // the container's settings
	MemCache, MemMappedFile, MemKernel                 uint64
	MemMaxUsage, MemFailcnt                            uint64
	MemPgfault, MemPgmajfault                          uint64 // this cgroup's own
	MemTotalPgfault, MemTotalPgmajfault                uint64 // with its children
	MemSwapLimit                                       uint64 // 0: unlimited
	OOMKills                                           uint64
	Threads, ThreadsMax                                uint64 // ThreadsMax 0: unlimited
	FileDescriptors, Sockets                           uint64
}

// userHZ is the unit of cpuacct.stat: USER_HZ, 100 on every Linux ABI.
const userHZ = 100

// readDetail reads the detail figures of the cgroup at path.
func (r *cgroupReader) readDetail(path string) (*CgroupDetail, error) {
	path = filepath.Clean("/" + path)
	d := &CgroupDetail{}
	var procsDir string
	if r.v2 {
		dir := r.cpu + path
		if err := readKeys(dir, "cpu.stat", []string{"user_usec", "system_usec", "nr_periods", "nr_throttled", "throttled_usec"}, func(k string, v uint64) {
			switch k {
			case "user_usec":
				d.CPUUserNanos = v * 1000
			case "system_usec":
				d.CPUSystemNanos = v * 1000
			case "nr_periods":
				d.CFSPeriods = v
			case "nr_throttled":
				d.CFSThrottledPeriods = v
			case "throttled_usec":
				d.CFSThrottledNanos = v * 1000
			}
		}); err != nil {
			return nil, err
		}
		if b, err := readFileCopy(dir + "/cpu.max"); err == nil {
			if f := strings.Fields(string(b)); len(f) == 2 {
				d.CPUPeriod, _ = strconv.ParseUint(f[1], 10, 64)
			}
		}
		if w, err := readUint(dir, "cpu.weight"); err == nil && w > 0 {
			// The inverse of the cgroups library's shares-to-weight
			// mapping, as cAdvisor reports v2 shares.
			d.CPUShares = 2 + ((w-1)*262142)/9999
		}
		if r.memory != "" {
			_ = readKeys(dir, "memory.stat", []string{"file", "file_mapped", "kernel", "pgfault", "pgmajfault"}, func(k string, v uint64) {
				switch k {
				case "file":
					d.MemCache = v
				case "file_mapped":
					d.MemMappedFile = v
				case "kernel":
					d.MemKernel = v
				case "pgfault":
					d.MemPgfault, d.MemTotalPgfault = v, v
				case "pgmajfault":
					d.MemPgmajfault, d.MemTotalPgmajfault = v, v
				}
			})
			d.MemMaxUsage, _ = readUint(dir, "memory.peak")
			_ = readKeys(dir, "memory.events", []string{"max", "oom_kill"}, func(k string, v uint64) {
				if k == "max" {
					d.MemFailcnt = v
				} else {
					d.OOMKills = v
				}
			})
			d.MemSwapLimit = limitOrZero(readUint(dir, "memory.swap.max"))
		}
		if r.pids != "" {
			d.ThreadsMax = limitOrZero(readUint(dir, "pids.max"))
		}
		d.Threads = countLines(dir + "/cgroup.threads")
		procsDir = dir
	} else {
		if r.cpu != "" {
			_ = readKeys(r.cpu+path, "cpuacct.stat", []string{"user", "system"}, func(k string, v uint64) {
				if k == "user" {
					d.CPUUserNanos = v * (1e9 / userHZ)
				} else {
					d.CPUSystemNanos = v * (1e9 / userHZ)
				}
			})
		}
		if r.cpuCtl != "" {
			dir := r.cpuCtl + path
			_ = readKeys(dir, "cpu.stat", []string{"nr_periods", "nr_throttled", "throttled_time"}, func(k string, v uint64) {
				switch k {
				case "nr_periods":
					d.CFSPeriods = v
				case "nr_throttled":
					d.CFSThrottledPeriods = v
				case "throttled_time":
					d.CFSThrottledNanos = v
				}
			})
			d.CPUPeriod, _ = readUint(dir, "cpu.cfs_period_us")
			d.CPUShares, _ = readUint(dir, "cpu.shares")
		}
		if r.memory != "" {
			dir := r.memory + path
			_ = readKeys(dir, "memory.stat", []string{"total_cache", "total_mapped_file", "pgfault", "pgmajfault", "total_pgfault", "total_pgmajfault"}, func(k string, v uint64) {
				switch k {
				case "total_cache":
					d.MemCache = v
				case "total_mapped_file":
					d.MemMappedFile = v
				case "pgfault":
					d.MemPgfault = v
				case "pgmajfault":
					d.MemPgmajfault = v
				case "total_pgfault":
					d.MemTotalPgfault = v
				case "total_pgmajfault":
					d.MemTotalPgmajfault = v
				}
			})
			d.MemKernel, _ = readUint(dir, "memory.kmem.usage_in_bytes")
			d.MemMaxUsage, _ = readUint(dir, "memory.max_usage_in_bytes")
			d.MemFailcnt, _ = readUint(dir, "memory.failcnt")
			_ = readKeys(dir, "memory.oom_control", []string{"oom_kill"}, func(_ string, v uint64) { d.OOMKills = v })
			if l, err := readUint(dir, "memory.memsw.limit_in_bytes"); err == nil && !unlimited(l) {
				d.MemSwapLimit = l
			}
			d.Threads = countLines(dir + "/tasks")
			procsDir = dir
		}
		if r.pids != "" {
			d.ThreadsMax = limitOrZero(readUint(r.pids+path, "pids.max"))
		}
	}
	if procsDir != "" {
		d.FileDescriptors, d.Sockets = countFds(procsDir + "/cgroup.procs")
	}
	return d, nil
}

// limitOrZero maps "max" (read as MaxUint64) and read errors to 0, the
// unlimited value of the metrics.
func limitOrZero(v uint64, err error) uint64 {
	if err != nil || unlimited(v) {
		return 0
	}
	return v
}

// countLines counts the entries of a cgroup list file (tasks,
// cgroup.threads); a missing file counts none.
func countLines(path string) uint64 {
	b, err := readFileCopy(path)
	if err != nil {
		return 0
	}
	return uint64(strings.Count(string(b), "\n"))
}

// countFds counts the open descriptors of the processes listed in procs,
// and how many of them are sockets, as cAdvisor does for
// container_file_descriptors and container_sockets. A process that exits
// meanwhile is skipped.
func countFds(procs string) (fds, sockets uint64) {
	b, err := readFileCopy(procs)
	if err != nil {
		return 0, 0
	}
	for _, pid := range strings.Fields(string(b)) {
		dir := "/proc/" + pid + "/fd"
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		fds += uint64(len(ents))
		buf := make([]byte, 64)
		for _, e := range ents {
			n, err := unix.Readlink(dir+"/"+e.Name(), buf)
			if err == nil && strings.HasPrefix(string(buf[:n]), "socket:") {
				sockets++
			}
		}
	}
	return fds, sockets
}

// FsUsage is the filesystem holding the containers' writable layers.
type FsUsage struct {
	Device                  string
	LimitBytes              uint64
	InodesTotal, InodesFree uint64
}

// layerFs reads the filesystem under the pods dir, where every writable
// layer lives (container_fs_limit_bytes and the inode figures).
func (m *Manager) layerFs() (*FsUsage, error) {
	dir := m.paths.PodsDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return nil, &fs.PathError{Op: "statfs", Path: dir, Err: err}
	}
	return &FsUsage{
		Device:      deviceOf(dir),
		LimitBytes:  st.Blocks * uint64(st.Bsize),
		InodesTotal: st.Files, InodesFree: st.Ffree,
	}, nil
}

// deviceOf names the device of the filesystem holding dir, from the
// mount table (cAdvisor's device label): the source of the longest mount
// point above dir.
func deviceOf(dir string) string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return ""
	}
	best, dev := "", ""
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		mp := f[1]
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, dev = mp, f[0]
		}
	}
	return dev
}

// MetricsStats is ListPodSandboxStats with the detail figures of every
// running container, and the layers' filesystem, for the metrics list.
type MetricsStats struct {
	Pods []PodStats
	Fs   *FsUsage
	// Details holds each running container's detail figures by id.
	Details map[string]*CgroupDetail
}

// ListPodSandboxMetricsStats returns what ListPodSandboxMetrics reports.
func (m *Manager) ListPodSandboxMetricsStats(ctx context.Context) MetricsStats {
	out := MetricsStats{Pods: m.ListPodSandboxStats(ctx, nil), Details: map[string]*CgroupDetail{}}
	fsu, err := m.layerFs()
	if err != nil {
		m.log.Warn("layer filesystem stats", "error", err)
	}
	out.Fs = fsu
	for _, p := range out.Pods {
		for _, c := range p.Containers {
			if c.Cgroup == nil || p.Pod.Cgroup == "" {
				continue
			}
			d, err := m.cgr.readDetail(m.ctrCgroup(p.Pod.Cgroup, c.Container.ID))
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					m.log.Warn("container metrics", "container", c.Container.ID, "error", err)
				}
				continue
			}
			out.Details[c.Container.ID] = d
		}
	}
	return out
}
