package sandbox

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/husk-runtime/husk/hostcgroup"
	"github.com/opencontainers/cgroups"
	cgmanager "github.com/opencontainers/cgroups/manager"
)

// v1Stats is what GetStats (or cgroupReader) gives for a v1 container
// with a 64 MiB limit, memsw accounting and some swap in use.
func v1Stats() *cgroups.Stats {
	return &cgroups.Stats{
		CpuStats: cgroups.CpuStats{CpuUsage: cgroups.CpuUsage{TotalUsage: 5e9}},
		MemoryStats: cgroups.MemoryStats{
			Usage: cgroups.MemoryData{Usage: 50 << 20, Limit: 64 << 20},
			Stats: map[string]uint64{
				"total_inactive_file": 10 << 20, "total_rss": 30 << 20, "total_pgfault": 1000, "total_pgmajfault": 7,
				"total_swap": 2 << 20, "hierarchical_memory_limit": 64 << 20, "hierarchical_memsw_limit": 128 << 20,
				// v2 names that must not be read on v1
				"inactive_file": 1, "anon": 1, "pgfault": 1, "pgmajfault": 1,
			},
		},
		PidsStats: cgroups.PidsStats{Current: 3},
	}
}

func TestUsageFromV1(t *testing.T) {
	u := usageFrom(v1Stats(), false)
	want := CgroupUsage{CPUNanos: 5e9, MemUsage: 50 << 20, WorkingSet: 40 << 20, RSS: 30 << 20, PageFaults: 1000,
		MajorPageFaults: 7, MemLimit: 64 << 20, HasSwap: true, SwapUsage: 2 << 20, SwapLimited: true,
		SwapAvailable: (128 - 52) << 20, Pids: 3}
	if u != want {
		t.Fatalf("v1 mapping:\n got %+v\nwant %+v", u, want)
	}
	if a, ok := u.Available(); !ok || a != 24<<20 {
		t.Fatalf("available %d %v, want 24 MiB", a, ok)
	}

	// Unlimited (PAGE_COUNTER_MAX) and no memsw accounting.
	st := v1Stats()
	st.MemoryStats.Stats["hierarchical_memory_limit"] = 9223372036854771712
	delete(st.MemoryStats.Stats, "hierarchical_memsw_limit")
	delete(st.MemoryStats.Stats, "total_swap")
	u = usageFrom(st, false)
	if u.MemLimit != 0 || u.HasSwap {
		t.Fatalf("unlimited, no memsw: limit %d swap %v", u.MemLimit, u.HasSwap)
	}
	if _, ok := u.Available(); ok {
		t.Fatal("available reported without a limit")
	}
	// Inactive file above usage (v1 counters are not read atomically).
	st.MemoryStats.Stats["total_inactive_file"] = 60 << 20
	if u = usageFrom(st, false); u.WorkingSet != 0 {
		t.Fatalf("working set %d, want 0", u.WorkingSet)
	}
}

func TestUsageFromV2(t *testing.T) {
	st := &cgroups.Stats{
		CpuStats: cgroups.CpuStats{CpuUsage: cgroups.CpuUsage{TotalUsage: 7e9}},
		MemoryStats: cgroups.MemoryStats{
			Usage:         cgroups.MemoryData{Usage: 80 << 20, Limit: math.MaxUint64},
			SwapOnlyUsage: cgroups.MemoryData{Usage: 4 << 20, Limit: 16 << 20},
			Stats: map[string]uint64{
				"inactive_file": 20 << 20, "anon": 55 << 20, "pgfault": 500, "pgmajfault": 2,
				"total_inactive_file": 1, "total_rss": 1, "hierarchical_memory_limit": 1,
			},
		},
	}
	u := usageFrom(st, true)
	want := CgroupUsage{CPUNanos: 7e9, MemUsage: 80 << 20, WorkingSet: 60 << 20, RSS: 55 << 20, PageFaults: 500,
		MajorPageFaults: 2, HasSwap: true, SwapUsage: 4 << 20, SwapLimited: true, SwapAvailable: 12 << 20}
	if u != want {
		t.Fatalf("v2 mapping:\n got %+v\nwant %+v", u, want)
	}
	// A limit, unlimited swap, and no swap accounting at all.
	st.MemoryStats.Usage.Limit = 100 << 20
	st.MemoryStats.SwapOnlyUsage.Limit = math.MaxUint64
	u = usageFrom(st, true)
	if a, ok := u.Available(); !ok || a != 40<<20 || !u.HasSwap || u.SwapLimited {
		t.Fatalf("limited memory, unlimited swap: %+v", u)
	}
	st.MemoryStats.SwapOnlyUsage = cgroups.MemoryData{}
	if u = usageFrom(st, true); u.HasSwap {
		t.Fatal("swap reported without swap files")
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The reader on a fake v1 tree: three hierarchies, the files it documents.
func TestCgroupReaderV1Files(t *testing.T) {
	root := t.TempDir()
	r := &cgroupReader{cpu: filepath.Join(root, "cpuacct"), memory: filepath.Join(root, "memory"), pids: filepath.Join(root, "pids")}
	path := "/husk/pod/ctr"
	writeFiles(t, filepath.Join(r.cpu, path), map[string]string{"cpuacct.usage": "123456789\n"})
	writeFiles(t, filepath.Join(r.memory, path), map[string]string{
		"memory.usage_in_bytes": "52428800\n",
		"memory.stat": "cache 1000\nrss 2000\ntotal_rss 31457280\ntotal_inactive_file 10485760\ntotal_pgfault 42\n" +
			"total_pgmajfault 1\nhierarchical_memory_limit 9223372036854771712\nhierarchical_memsw_limit 9223372036854771712\ntotal_swap 0\n",
	})
	writeFiles(t, filepath.Join(r.pids, path), map[string]string{"pids.current": "4\n"})
	st, err := r.read(path, true)
	if err != nil {
		t.Fatal(err)
	}
	u := usageFrom(st, false)
	if u.CPUNanos != 123456789 || u.MemUsage != 50<<20 || u.WorkingSet != 40<<20 || u.RSS != 30<<20 ||
		u.PageFaults != 42 || u.MajorPageFaults != 1 || u.MemLimit != 0 || !u.HasSwap || u.SwapLimited || u.Pids != 4 {
		t.Fatalf("v1 read: %+v", u)
	}
	if _, err := r.read("/husk/gone", false); !os.IsNotExist(err) {
		t.Fatalf("missing cgroup: want not-exist, got %v", err)
	}
}

// The reader on a fake v2 tree, with and without swap files.
func TestCgroupReaderV2Files(t *testing.T) {
	root := t.TempDir()
	r := &cgroupReader{v2: true, cpu: root, memory: root, pids: root}
	path := "/husk/pod"
	dir := filepath.Join(root, path)
	writeFiles(t, dir, map[string]string{
		"cpu.stat":       "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n",
		"memory.current": "83886080\n", "memory.max": "104857600\n",
		"memory.stat":         "anon 57671680\nfile 20971520\ninactive_file 20971520\npgfault 9\npgmajfault 0\n",
		"memory.swap.current": "0\n", "memory.swap.max": "max\n",
		"pids.current": "2\n",
	})
	st, err := r.read(path, true)
	if err != nil {
		t.Fatal(err)
	}
	u := usageFrom(st, true)
	if u.CPUNanos != 2500000 || u.MemUsage != 80<<20 || u.WorkingSet != 60<<20 || u.RSS != 55<<20 || u.PageFaults != 9 ||
		u.MemLimit != 100<<20 || !u.HasSwap || u.SwapLimited || u.Pids != 2 {
		t.Fatalf("v2 read: %+v", u)
	}
	os.Remove(filepath.Join(dir, "memory.swap.current"))
	os.Remove(filepath.Join(dir, "memory.swap.max"))
	if st, err = r.read(path, false); err != nil {
		t.Fatal(err)
	}
	if u = usageFrom(st, true); u.HasSwap || u.Pids != 0 {
		t.Fatalf("v2 without swap accounting: %+v", u)
	}
}

func TestParseNetDev(t *testing.T) {
	data := `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
  eth0: 1234567    890    3    4    0     0          0         0   765432     321    5    6    0     0       0          0
`
	ifs, err := parseNetDev([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := InterfaceUsage{Name: "eth0", RxBytes: 1234567, RxPackets: 890, RxErrors: 3, RxDropped: 4,
		TxBytes: 765432, TxPackets: 321, TxErrors: 5, TxDropped: 6}
	if len(ifs) != 2 || ifs[1] != want {
		t.Fatalf("got %+v", ifs)
	}
	if _, err := parseNetDev([]byte("a\nb\neth0: 1 2 3\n")); err == nil {
		t.Fatal("short line accepted")
	}
}

func TestCPURate(t *testing.T) {
	s := &statsCache{cpu: map[string]cpuSample{}}
	t0 := time.Now()
	u := CgroupUsage{At: t0, CPUNanos: 1e9}
	s.rate("c/x", &u)
	if u.HasRate {
		t.Fatal("rate on the first sample")
	}
	// Half a core over 2 s.
	u = CgroupUsage{At: t0.Add(2 * time.Second), CPUNanos: 2e9}
	s.rate("c/x", &u)
	if !u.HasRate || u.NanoCores != 5e8 {
		t.Fatalf("rate %d %v, want 5e8", u.NanoCores, u.HasRate)
	}
	// A sample 10 ms later is computed against the kept base, not kept.
	u = CgroupUsage{At: t0.Add(2*time.Second + 10*time.Millisecond), CPUNanos: 2e9 + 1e7}
	s.rate("c/x", &u)
	if u.NanoCores != 1e9 || s.cpu["c/x"].nanos != 2e9 {
		t.Fatalf("short window: rate %d, base %d", u.NanoCores, s.cpu["c/x"].nanos)
	}
	// Counter reset: no rate, new base.
	u = CgroupUsage{At: t0.Add(3 * time.Second), CPUNanos: 5}
	s.rate("c/x", &u)
	if u.HasRate || s.cpu["c/x"].nanos != 5 {
		t.Fatalf("reset: %+v base %+v", u, s.cpu["c/x"])
	}
}

func TestWalkLayer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "upper")
	writeFiles(t, filepath.Join(dir, "etc"), map[string]string{"a": string(make([]byte, 100000))})
	if err := os.Link(filepath.Join(dir, "etc", "a"), filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	u, err := walkLayer(dir, "/m")
	if err != nil {
		t.Fatal(err)
	}
	// upper, etc, a (b is the same inode)
	if u.Inodes != 3 || u.Bytes < 100000 || u.Mountpoint != "/m" {
		t.Fatalf("layer %+v", u)
	}
	if u, err := walkLayer(filepath.Join(dir, "gone"), "/m"); u != nil || err != nil {
		t.Fatalf("missing upper dir: %v %v", u, err)
	}
}

// liveCgroup puts a sleeping process that has touched some memory in a new
// cgroup of the host, as a container would be. Root only.
func liveCgroup(t testing.TB) (path string, full func() *cgroups.Stats) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a cgroup")
	}
	path = "/husk-stats-test-" + strconv.Itoa(os.Getpid())
	// The shell waits for a line on stdin before it does anything, so all
	// of its work is charged to the test cgroup, which it joins first. It
	// says when the work is over and becomes the sleep: from then on the
	// figures hold still (one process), which the test waits for.
	cmd := exec.Command("sh", "-c", "read go; x=$(head -c 4000000 /dev/zero | tr '\\0' a); echo done; exec sleep 60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	release, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cg := &cgroups.Cgroup{Path: path, Resources: &cgroups.Resources{}}
	mgr, err := cgmanager.New(cg)
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Apply(cmd.Process.Pid); err != nil {
		t.Fatalf("apply %s: %v", path, err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the sleep sh became
		_ = cmd.Wait()
		// A test that failed early may leave the work's processes,
		// reparented to init, which may take a moment to reap them;
		// until then the cgroup is busy. Leave nothing behind.
		deadline := time.Now().Add(15 * time.Second)
		for {
			err := mgr.Destroy()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("remove test cgroup %s: %v", path, err)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	if _, err := release.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	// Wait until the work is done and shows: the shell said so, memory is
	// charged, CPU spent, and only the sleep is left (while allocating
	// there are sh, a subshell, head and tr; a count of 2 was also seen
	// right after the subshell forked, before any work).
	done := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && line != "done\n" {
			err = fmt.Errorf("shell said %q", line)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("test cgroup work: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the test cgroup's shell did not finish its work in 10s")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The shell has become the sleep (its 4 MB string is gone, so
		// memory holds still from here).
		comm, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/comm")
		st, err := mgr.GetStats()
		if err == nil && string(comm) == "sleep\n" && st.MemoryStats.Usage.Usage > 0 && st.CpuStats.CpuUsage.TotalUsage > 0 && st.PidsStats.Current == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the test cgroup %s shows no work after 10s: %v", path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return path, func() *cgroups.Stats {
		st, err := mgr.GetStats()
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
}

// The direct reads and the library's GetStats give the same figures on this
// host's real cgroups (v1 or v2).
func TestReaderMatchesGetStats(t *testing.T) {
	path, full := liveCgroup(t)
	r := thisHostReader(t)
	raw, err := r.read(path, true)
	if err != nil {
		t.Fatal(err)
	}
	fast, lib := usageFrom(raw, r.v2), usageFrom(full(), r.v2)
	near := func(a, b uint64) bool { d := int64(a) - int64(b); return d < 1<<20 && d > -(1<<20) }
	if !near(fast.MemUsage, lib.MemUsage) || !near(fast.WorkingSet, lib.WorkingSet) || !near(fast.RSS, lib.RSS) ||
		fast.MemLimit != lib.MemLimit || fast.HasSwap != lib.HasSwap || fast.Pids != lib.Pids ||
		lib.CPUNanos < fast.CPUNanos || lib.CPUNanos-fast.CPUNanos > 5e7 {
		t.Fatalf("direct reads and GetStats disagree:\ndirect %+v\n   lib %+v", fast, lib)
	}
	if fast.MemUsage == 0 || fast.CPUNanos == 0 || fast.Pids == 0 {
		t.Fatalf("empty figures from a live cgroup: %+v", fast)
	}
	t.Logf("v2=%v direct: %+v", r.v2, fast)
}

// BenchmarkCgroupRead compares one container's read: the few files the
// CRI figures need, against the library's full GetStats.
func BenchmarkCgroupRead(b *testing.B) {
	path, full := liveCgroup(b)
	r := thisHostReader(b)
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			raw, err := r.read(path, false)
			if err != nil {
				b.Fatal(err)
			}
			_ = usageFrom(raw, r.v2)
		}
	})
	b.Run("GetStats", func(b *testing.B) {
		for b.Loop() {
			_ = usageFrom(full(), r.v2)
		}
	})
}

func thisHostReader(t testing.TB) *cgroupReader {
	l, err := hostcgroup.Read()
	if err != nil {
		t.Fatal(err)
	}
	return newCgroupReader(l)
}

// The metrics' detail reads on fake v1 (cpu and cpuacct apart) and v2
// trees: each figure from the file its doc names.
func TestCgroupDetail(t *testing.T) {
	root := t.TempDir()
	path := "/husk/pod/ctr"
	r := &cgroupReader{cpu: filepath.Join(root, "cpuacct"), cpuCtl: filepath.Join(root, "cpu"),
		memory: filepath.Join(root, "memory"), pids: filepath.Join(root, "pids")}
	writeFiles(t, filepath.Join(r.cpu, path), map[string]string{"cpuacct.stat": "user 250\nsystem 50\n"})
	writeFiles(t, filepath.Join(r.cpuCtl, path), map[string]string{"cpu.stat": "nr_periods 10\nnr_throttled 4\nthrottled_time 3000000000\n",
		"cpu.cfs_period_us": "100000\n", "cpu.shares": "1024\n"})
	writeFiles(t, filepath.Join(r.memory, path), map[string]string{
		"memory.stat":                "pgfault 7\npgmajfault 1\ntotal_cache 4096\ntotal_mapped_file 8192\ntotal_pgfault 9\ntotal_pgmajfault 2\n",
		"memory.kmem.usage_in_bytes": "12288\n", "memory.max_usage_in_bytes": "65536\n", "memory.failcnt": "3\n",
		"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n", "memory.memsw.limit_in_bytes": "67108864\n",
		"tasks": "1\n2\n3\n", "cgroup.procs": "",
	})
	writeFiles(t, filepath.Join(r.pids, path), map[string]string{"pids.max": "max\n"})
	d, err := r.readDetail(path)
	if err != nil {
		t.Fatal(err)
	}
	want := CgroupDetail{CPUUserNanos: 2.5e9, CPUSystemNanos: 0.5e9, CFSPeriods: 10, CFSThrottledPeriods: 4, CFSThrottledNanos: 3e9,
		CPUPeriod: 100000, CPUShares: 1024, MemCache: 4096, MemMappedFile: 8192, MemKernel: 12288, MemMaxUsage: 65536, MemFailcnt: 3,
		MemPgfault: 7, MemPgmajfault: 1, MemTotalPgfault: 9, MemTotalPgmajfault: 2, MemSwapLimit: 64 << 20, OOMKills: 1, Threads: 3}
	if *d != want {
		t.Fatalf("v1 detail\n got %+v\nwant %+v", *d, want)
	}

	root = t.TempDir()
	r = &cgroupReader{v2: true, cpu: root, cpuCtl: root, memory: root, pids: root}
	writeFiles(t, filepath.Join(root, path), map[string]string{
		"cpu.stat": "usage_usec 9\nuser_usec 2000000\nsystem_usec 1000000\nnr_periods 5\nnr_throttled 2\nthrottled_usec 1500000\n",
		"cpu.max":  "20000 100000\n", "cpu.weight": "100\n",
		"memory.stat": "anon 1\nfile 4096\nfile_mapped 8192\nkernel 12288\npgfault 7\npgmajfault 1\n",
		"memory.peak": "65536\n", "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n", "memory.swap.max": "max\n",
		"pids.max": "100\n", "cgroup.threads": "4\n5\n", "cgroup.procs": "",
	})
	if d, err = r.readDetail(path); err != nil {
		t.Fatal(err)
	}
	want = CgroupDetail{CPUUserNanos: 2e9, CPUSystemNanos: 1e9, CFSPeriods: 5, CFSThrottledPeriods: 2, CFSThrottledNanos: 1.5e9,
		CPUPeriod: 100000, CPUShares: 2 + 99*262142/9999, MemCache: 4096, MemMappedFile: 8192, MemKernel: 12288, MemMaxUsage: 65536,
		MemFailcnt: 3, MemPgfault: 7, MemPgmajfault: 1, MemTotalPgfault: 7, MemTotalPgmajfault: 1, OOMKills: 1, Threads: 2, ThreadsMax: 100}
	if *d != want {
		t.Fatalf("v2 detail\n got %+v\nwant %+v", *d, want)
	}
}

// Pressure on each shape: read from the cgroup2 mount in hybrid mode (a v1
// host with a unified mount beside) and on a unified host; none on a
// legacy host or where the kernel keeps none (no files).
func TestCgroupReaderPressure(t *testing.T) {
	root := t.TempDir()
	unified := filepath.Join(root, "unified")
	path := "/kubepods/pod1/ctr"
	writeFiles(t, filepath.Join(unified, path), map[string]string{
		// Before Linux 5.13 cpu.pressure has no "full" line.
		"cpu.pressure":    "some avg10=1.50 avg60=0.25 avg300=0.05 total=2500\n",
		"memory.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=7\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=3\n",
		"io.pressure":     "some avg10=12.00 avg60=4.00 avg300=1.00 total=900000\nfull avg10=10.00 avg60=3.00 avg300=0.50 total=800000\n",
	})
	for _, tc := range []struct {
		name   string
		layout *hostcgroup.Layout
		want   bool
	}{
		{"hybrid", &hostcgroup.Layout{Mode: hostcgroup.Hybrid, V1: map[string]string{"cpuacct": filepath.Join(root, "cpuacct")}, Unified: unified}, true},
		{"unified", &hostcgroup.Layout{Mode: hostcgroup.Unified, Unified: unified}, true},
		{"legacy", &hostcgroup.Layout{Mode: hostcgroup.Legacy, V1: map[string]string{"cpuacct": filepath.Join(root, "cpuacct")}}, false},
	} {
		r := newCgroupReader(tc.layout)
		p := r.readPressure(path)
		if (p != nil) != tc.want {
			t.Fatalf("%s: pressure %+v, want present %v", tc.name, p, tc.want)
		}
		if p == nil {
			continue
		}
		if p.CPU.Some != (PressureData{Avg10: 1.5, Avg60: 0.25, Avg300: 0.05, TotalMicros: 2500}) || p.CPU.Full != (PressureData{}) {
			t.Errorf("%s: cpu %+v", tc.name, p.CPU)
		}
		if p.Memory.Some.TotalMicros != 7 || p.Memory.Full.TotalMicros != 3 {
			t.Errorf("%s: memory %+v", tc.name, p.Memory)
		}
		if p.IO.Some.Avg10 != 12 || p.IO.Full != (PressureData{Avg10: 10, Avg60: 3, Avg300: 0.5, TotalMicros: 800000}) {
			t.Errorf("%s: io %+v", tc.name, p.IO)
		}
		if p := r.readPressure("/kubepods/gone"); p != nil {
			t.Errorf("%s: pressure of a cgroup without the files: %+v", tc.name, p)
		}
	}
}
