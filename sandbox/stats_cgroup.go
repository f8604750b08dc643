package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/husk-runtime/husk/hostcgroup"
	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
)

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
	// files keeps the files of read and readPressure open between
	// lists; nil: opened at each read.
	files *openFiles
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
	return r.pressureFrom(readFile, path)
}

func (r *cgroupReader) pressureFrom(src readFn, path string) *Pressure {
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
		b, err := src(filepath.Join(dir, f.name), &buf)
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
	return r.readFrom(readFile, path, pids)
}

// readFrom reads the figures through src (see openFiles).
func (r *cgroupReader) readFrom(src readFn, path string, pids bool) (*cgroups.Stats, error) {
	path = filepath.Clean("/" + path)
	st := &cgroups.Stats{MemoryStats: cgroups.MemoryStats{Stats: make(map[string]uint64, 8)}}
	var err error
	if r.v2 {
		dir := r.cpu + path
		if err = keysIn(src, dir+"/cpu.stat", []string{"usage_usec"}, func(_ string, v uint64) {
			st.CpuStats.CpuUsage.TotalUsage = v * 1000
		}); err != nil {
			return nil, err
		}
		if r.memory != "" {
			if err := r.readMemoryV2(src, dir, st); err != nil {
				return nil, err
			}
		}
	} else {
		if r.cpu != "" {
			if st.CpuStats.CpuUsage.TotalUsage, err = uintIn(src, r.cpu+path+"/cpuacct.usage"); err != nil {
				return nil, err
			}
		}
		if r.memory != "" {
			mdir := r.memory + path
			if st.MemoryStats.Usage.Usage, err = uintIn(src, mdir+"/memory.usage_in_bytes"); err != nil {
				return nil, err
			}
			if err = keysIn(src, mdir+"/memory.stat", v1Keys, keep(st.MemoryStats.Stats)); err != nil {
				return nil, err
			}
		}
	}
	if pids && r.pids != "" {
		if st.PidsStats.Current, err = uintIn(src, r.pids+path+"/pids.current"); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func (r *cgroupReader) readMemoryV2(src readFn, dir string, st *cgroups.Stats) error {
	var err error
	if st.MemoryStats.Usage.Usage, err = uintIn(src, dir+"/memory.current"); err != nil {
		return err
	}
	if st.MemoryStats.Usage.Limit, err = uintIn(src, dir+"/memory.max"); err != nil {
		return err
	}
	if err = keysIn(src, dir+"/memory.stat", v2Keys, keep(st.MemoryStats.Stats)); err != nil {
		return err
	}
	// No swap files: the kernel does not account swap (no
	// CONFIG_MEMCG_SWAP or swapaccount=0); GetStats leaves it zero too.
	if sw, err := uintIn(src, dir+"/memory.swap.current"); err == nil {
		st.MemoryStats.SwapOnlyUsage.Usage = sw
		if st.MemoryStats.SwapOnlyUsage.Limit, err = uintIn(src, dir+"/memory.swap.max"); err != nil {
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
func readUint(dir, file string) (uint64, error) { return uintIn(readFile, dir+"/"+file) }

func uintIn(src readFn, path string) (uint64, error) {
	buf := bufs.Get().(*[]byte)
	defer bufs.Put(buf)
	b, err := src(path, buf)
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
	return keysIn(readFile, dir+"/"+file, keys, f)
}

func keysIn(src readFn, path string, keys []string, f func(string, uint64)) error {
	buf := bufs.Get().(*[]byte)
	defer bufs.Put(buf)
	b, err := src(path, buf)
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
