package hostcgroup

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fakeHost is a cgroupfs tree under a temporary dir and the mount table
// that names it: each shape below is one a node of ours or a user's has.
type fakeHost struct {
	t     *testing.T
	root  string
	table strings.Builder
	n     int
}

func newFakeHost(t *testing.T) *fakeHost {
	return &fakeHost{t: t, root: t.TempDir(), n: 30}
}

// v1 mounts a v1 hierarchy binding ctls ("cpu,cpuacct"), with the files
// named in files created in its root.
func (h *fakeHost) v1(dir, ctls string, files ...string) string {
	mp := h.mkdir(dir)
	for _, f := range files {
		h.write(filepath.Join(mp, f), "")
	}
	h.mount(mp, "cgroup", "rw,"+ctls)
	return mp
}

// v2 mounts a cgroup2 hierarchy offering ctls, with a child cgroup
// (init.scope) holding childFiles.
func (h *fakeHost) v2(dir, ctls string, childFiles ...string) string {
	mp := h.mkdir(dir)
	h.write(filepath.Join(mp, "cgroup.controllers"), ctls+"\n")
	child := h.mkdir(filepath.Join(dir, "init.scope"))
	for _, f := range childFiles {
		h.write(filepath.Join(child, f), "max\n")
	}
	h.mount(mp, "cgroup2", "rw,nsdelegate")
	return mp
}

func (h *fakeHost) mkdir(rel string) string {
	p := filepath.Join(h.root, rel)
	if err := os.MkdirAll(p, 0o755); err != nil {
		h.t.Fatal(err)
	}
	return p
}

func (h *fakeHost) write(p, s string) {
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *fakeHost) mount(mp, fstype, opts string) {
	h.n++
	fmt.Fprintf(&h.table, "%d 22 0:%d / %s rw,relatime - %s %s %s\n", h.n, h.n, mp, fstype, fstype, opts)
}

func (h *fakeHost) layout() *Layout {
	l, err := Parse(strings.NewReader(h.table.String()), []string{"2MB", "1GB"})
	if err != nil {
		h.t.Fatal(err)
	}
	return l
}

// v1Set mounts the usual v1 controllers, less those in skip; cpu and
// cpuacct joined or apart.
func (h *fakeHost) v1Set(joined bool, skip ...string) {
	want := func(c string) bool {
		for _, s := range skip {
			if s == c {
				return false
			}
		}
		return true
	}
	if joined {
		h.v1("cpu,cpuacct", "cpu,cpuacct")
	} else {
		h.v1("cpu", "cpu")
		h.v1("cpuacct", "cpuacct")
	}
	for _, c := range []string{"cpuset", "memory", "devices", "freezer", "blkio", "pids", "hugetlb"} {
		if !want(c) {
			continue
		}
		if c == "memory" {
			h.v1(c, c, "memory.memsw.limit_in_bytes")
		} else {
			h.v1(c, c)
		}
	}
	h.v1("systemd", "none,name=systemd")
}

// kubeletResources is what kubelet sends for a Burstable container on a
// node with 2 MiB and 1 GiB pages: every kind of limit, some of them 0.
func kubeletResources() *specs.LinuxResources {
	shares, quota, period := uint64(256), int64(50000), uint64(100000)
	mem, swap := int64(64<<20), int64(64<<20)
	pids := int64(100)
	return &specs.LinuxResources{
		CPU:            &specs.LinuxCPU{Shares: &shares, Quota: &quota, Period: &period, Cpus: "0", Mems: "0"},
		Memory:         &specs.LinuxMemory{Limit: &mem, Swap: &swap},
		Pids:           &specs.LinuxPids{Limit: &pids},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 0}, {Pagesize: "1GB", Limit: 0}},
	}
}

func controllersOf(ds []Dropped) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Controller)
	}
	return out
}

func TestShapes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		make   func(h *fakeHost)
		mode   Mode
		has    []string
		hasnt  []string
		swap   bool
		drops  []string // controllers whose limits Fit drops from kubeletResources
		say    []string // substrings String() must have
		unify  map[string]string
		keepUn []string // unified keys kept
	}{
		{
			name: "unified, all delegated",
			make: func(h *fakeHost) {
				h.v2("cg", "cpuset cpu io memory hugetlb pids rdma misc", "memory.max", "memory.swap.max")
			},
			mode: Unified, has: []string{"cpu", "cpuset", "memory", "hugetlb", "pids", "io"}, swap: true,
			unify: map[string]string{"memory.high": "1000000", "cgroup.max.depth": "5"}, keepUn: []string{"cgroup.max.depth", "memory.high"},
			say: []string{"v2 (unified)", "controllers: cpuset cpu io memory hugetlb pids rdma misc", "swap accounted"},
		},
		{
			name: "unified, no cpuset hugetlb pids delegated, no swap accounting",
			make: func(h *fakeHost) { h.v2("cg", "cpu io memory", "memory.max") },
			mode: Unified, has: []string{"cpu", "memory"}, hasnt: []string{"cpuset", "hugetlb", "pids", "rdma"},
			drops: []string{"cpuset", "swap", "pids", "hugetlb", "pids", "misc"},
			unify: map[string]string{"memory.high": "1000000", "pids.max": "10", "misc.max": "x 1"}, keepUn: []string{"memory.high"},
		},
		{
			name: "unified, no memory delegated",
			make: func(h *fakeHost) { h.v2("cg", "cpu pids") },
			mode: Unified, has: []string{"cpu", "pids"}, hasnt: []string{"memory"},
			drops: []string{"cpuset", "memory", "hugetlb"},
		},
		{
			name: "hybrid, hugetlb only on the unified mount (the fresh node that failed)",
			make: func(h *fakeHost) {
				h.v1Set(false, "hugetlb")
				h.v2("cg/unified", "hugetlb")
			},
			mode: Hybrid, has: []string{"cpu", "cpuacct", "cpuset", "memory", "pids"}, hasnt: []string{"hugetlb"}, swap: true,
			drops: []string{"hugetlb"},
			say:   []string{"v1 (hybrid)", "(cpu, cpuacct apart)", "offers hugetlb, unusable by a v1 manager"},
			unify: map[string]string{"memory.high": "1"},
		},
		{
			name: "hybrid, every controller on v1",
			make: func(h *fakeHost) {
				h.v1Set(true)
				h.v2("cg/unified", "")
			},
			mode: Hybrid, has: []string{"cpu", "cpuacct", "cpuset", "memory", "pids", "hugetlb"}, swap: true,
			say: []string{"v1 (hybrid)", "(cpu, cpuacct joined)", "offers no controllers"},
		},
		{
			name: "legacy, cpu,cpuacct joined",
			make: func(h *fakeHost) { h.v1Set(true) },
			mode: Legacy, has: []string{"cpu", "cpuacct", "cpuset", "memory", "pids", "hugetlb"}, swap: true,
			say: []string{"v1 (legacy)", "(cpu, cpuacct joined)"},
		},
		{
			name: "legacy, cpu and cpuacct apart",
			make: func(h *fakeHost) { h.v1Set(false) },
			mode: Legacy, has: []string{"cpu", "cpuacct", "cpuset", "memory", "pids", "hugetlb"}, swap: true,
			say: []string{"(cpu, cpuacct apart)"},
		},
		{
			name: "legacy, no cpuset",
			make: func(h *fakeHost) { h.v1Set(true, "cpuset") },
			mode: Legacy, hasnt: []string{"cpuset"}, swap: true, drops: []string{"cpuset"},
		},
		{
			name: "legacy, no hugetlb",
			make: func(h *fakeHost) { h.v1Set(true, "hugetlb") },
			mode: Legacy, hasnt: []string{"hugetlb"}, swap: true, drops: []string{"hugetlb"},
		},
		{
			name: "legacy, no pids",
			make: func(h *fakeHost) { h.v1Set(true, "pids") },
			mode: Legacy, hasnt: []string{"pids"}, swap: true, drops: []string{"pids"},
		},
		{
			name: "legacy, memory without swap accounting",
			make: func(h *fakeHost) {
				h.v1("cpu,cpuacct", "cpu,cpuacct")
				h.v1("memory", "memory")
				h.v1("cpuset", "cpuset")
				h.v1("pids", "pids")
				h.v1("hugetlb", "hugetlb")
			},
			mode: Legacy, has: []string{"memory"}, drops: []string{"swap"}, say: []string{"swap not accounted"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(t)
			tc.make(h)
			l := h.layout()
			if l.Mode != tc.mode {
				t.Fatalf("mode = %s, want %s", l.Mode, tc.mode)
			}
			for _, c := range tc.has {
				if !l.Has(c) {
					t.Errorf("Has(%s) = false, want true (%s)", c, l)
				}
				if _, ok := l.Dir(c); !ok {
					t.Errorf("Dir(%s) not found", c)
				}
			}
			for _, c := range tc.hasnt {
				if l.Has(c) {
					t.Errorf("Has(%s) = true, want false (%s)", c, l)
				}
			}
			if l.Swap != tc.swap {
				t.Errorf("Swap = %v, want %v", l.Swap, tc.swap)
			}
			for _, s := range tc.say {
				if !strings.Contains(l.String(), s) {
					t.Errorf("String() = %q, want it to say %q", l, s)
				}
			}

			r := kubeletResources()
			r.Unified = maps.Clone(tc.unify)
			dropped := l.Fit(r)
			if got := controllersOf(dropped); !sameSet(got, tc.drops, tc.unify, l.Mode) {
				t.Errorf("dropped %v (%+v), want %v", got, dropped, tc.drops)
			}
			// What is kept is exactly what the host has.
			if got := r.CPU.Cpus != ""; got != l.Has("cpuset") {
				t.Errorf("cpuset kept = %v, host has cpuset = %v", got, l.Has("cpuset"))
			}
			if got := r.CPU.Shares != nil && *r.CPU.Shares == 256; got != l.Has("cpu") {
				t.Errorf("cpu shares kept = %v, host has cpu = %v", got, l.Has("cpu"))
			}
			if got := r.Memory != nil && *r.Memory.Limit == 64<<20; got != l.Has("memory") {
				t.Errorf("memory limit kept = %v, host has memory = %v", got, l.Has("memory"))
			}
			if got := r.Memory != nil && r.Memory.Swap != nil; got != (l.Has("memory") && l.Swap) {
				t.Errorf("swap limit kept = %v, host accounts swap = %v", got, l.Swap)
			}
			if got := r.Pids != nil; got != l.Has("pids") {
				t.Errorf("pids limit kept = %v, host has pids = %v", got, l.Has("pids"))
			}
			if got := len(r.HugepageLimits) == 2; got != l.Has("hugetlb") {
				t.Errorf("hugepage limits kept = %v (%v), host has hugetlb = %v", got, r.HugepageLimits, l.Has("hugetlb"))
			}
			var kept []string
			for k := range r.Unified {
				kept = append(kept, k)
			}
			if !sameStrings(kept, tc.keepUn) {
				t.Errorf("unified keys kept %v, want %v", kept, tc.keepUn)
			}
		})
	}
}

// sameSet compares the dropped controllers with want, plus one "unified"
// drop per key on a v1 manager (on a unified host want names the keys'
// controllers itself).
func sameSet(got, want []string, unified map[string]string, mode Mode) bool {
	w := append([]string(nil), want...)
	if mode != Unified {
		for range unified {
			w = append(w, "unified")
		}
	}
	return sameStrings(got, w)
}

func sameStrings(a, b []string) bool {
	count := map[string]int{}
	for _, s := range a {
		count[s]++
	}
	for _, s := range b {
		count[s]--
	}
	for _, n := range count {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestFitHugePageSizeTheKernelLacks(t *testing.T) {
	h := newFakeHost(t)
	h.v1Set(true)
	l := h.layout()
	r := &specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB"}, {Pagesize: "16GB"}}}
	dropped := l.Fit(r)
	if len(r.HugepageLimits) != 1 || r.HugepageLimits[0].Pagesize != "2MB" {
		t.Errorf("kept %v, want the 2MB limit only", r.HugepageLimits)
	}
	if len(dropped) != 1 || !strings.Contains(dropped[0].Limit, "16GB") {
		t.Errorf("dropped %+v, want the 16GB limit", dropped)
	}
}

func TestHierarchies(t *testing.T) {
	h := newFakeHost(t)
	h.v1("cpu,cpuacct", "cpu,cpuacct")
	h.v1("memory", "memory")
	h.v1("systemd", "none,name=systemd")
	u := h.v2("unified", "hugetlb")
	l := h.layout()
	// name=systemd binds no controller, but libcontainer's v1 manager
	// makes every cgroup there too, so removal must visit it.
	want := []string{filepath.Join(h.root, "cpu,cpuacct"), filepath.Join(h.root, "memory"), filepath.Join(h.root, "systemd"), u}
	if got := l.Hierarchies(); !reflect.DeepEqual(got, want) {
		t.Errorf("Hierarchies() = %v, want %v", got, want)
	}
	if d, _ := l.Dir("cpuacct"); d != filepath.Join(h.root, "cpu,cpuacct") {
		t.Errorf("Dir(cpuacct) = %s", d)
	}
	if l.Has("none") || l.Has("name=systemd") {
		t.Errorf("a named hierarchy counted as a controller: %s", l)
	}
	if _, ok := l.Dir("pids"); ok {
		t.Error("Dir(pids) found on a host without pids")
	}
}

// The machine the tests run on: whatever its shape, reading it works and
// agrees with the kernel's own list of enabled controllers.
func TestReadThisHost(t *testing.T) {
	l, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("this host: %s", l)
	if l.Mode == Unified && l.Unified == "" {
		t.Error("unified host without a cgroup2 mount")
	}
	if l.Mode != Unified && len(l.V1) == 0 {
		t.Error("v1 host without v1 hierarchies")
	}
}
