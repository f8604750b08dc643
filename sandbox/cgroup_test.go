package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/husk-runtime/husk/hostcgroup"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeLayout mounts, under a temp dir, v1 hierarchies named by ctls
// ("cpu,cpuacct") and, when unified is not "-", a cgroup2 mount offering
// unified's controllers.
func fakeLayout(t testing.TB, unified string, ctls ...string) (*hostcgroup.Layout, string) {
	root := t.TempDir()
	var table strings.Builder
	for i, c := range ctls {
		mp := filepath.Join(root, c)
		if err := os.MkdirAll(mp, 0o755); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&table, "%d 22 0:%d / %s rw - cgroup cgroup rw,%s\n", 40+i, 40+i, mp, c)
	}
	if unified != "-" {
		mp := filepath.Join(root, "unified")
		if err := os.MkdirAll(mp, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mp, "cgroup.controllers"), []byte(unified+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&table, "99 22 0:99 / %s rw - cgroup2 cgroup2 rw\n", mp)
	}
	l, err := hostcgroup.Parse(strings.NewReader(table.String()), []string{"2MB"})
	if err != nil {
		t.Fatal(err)
	}
	return l, root
}

// The fresh node whose every kubelet container failed: hybrid, hugetlb on
// the unified mount only. kubelet's hugepage limits are dropped with one
// warning naming hugetlb; the limits the host has are kept.
func TestFitResourcesHybridHugetlbOnUnified(t *testing.T) {
	l, _ := fakeLayout(t, "hugetlb", "cpu", "cpuacct", "cpuset", "memory", "pids")
	var logs bytes.Buffer
	m := &Manager{cg: l, log: slog.New(slog.NewTextHandler(&logs, nil))}
	cri := &runtimeapi.LinuxContainerResources{CpuShares: 256, CpuQuota: 50000, CpuPeriod: 100000, MemoryLimitInBytes: 64 << 20,
		CpusetCpus: "0", HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 0}}}
	for range 3 { // kubelet sends them with every container: one warning
		r := resources(cri)
		m.fitResources(r)
		if len(r.HugepageLimits) != 0 {
			t.Fatalf("hugepage limits kept on a host whose hugetlb a v1 manager cannot use: %v", r.HugepageLimits)
		}
		if *r.CPU.Shares != 256 || *r.CPU.Quota != 50000 || *r.Memory.Limit != 64<<20 || r.CPU.Cpus != "0" {
			t.Fatalf("a limit the host has was dropped: %+v %+v", r.CPU, r.Memory)
		}
	}
	if n := strings.Count(logs.String(), "controller=hugetlb"); n != 1 {
		t.Errorf("%d warnings naming hugetlb, want 1:\n%s", n, logs.String())
	}

	// With hugetlb on a v1 hierarchy, the same limits are applied.
	l, _ = fakeLayout(t, "", "cpu,cpuacct", "memory", "hugetlb")
	m = &Manager{cg: l, log: slog.New(slog.DiscardHandler)}
	r := resources(cri)
	m.fitResources(r)
	if len(r.HugepageLimits) != 1 || r.HugepageLimits[0].Pagesize != "2MB" {
		t.Errorf("hugepage limits dropped where hugetlb is a v1 hierarchy: %v", r.HugepageLimits)
	}
	if r.CPU.Cpus != "" {
		t.Errorf("cpuset kept on a host without cpuset: %q", r.CPU.Cpus)
	}
}

// Stats on hosts missing optional controllers: a v1 host without pids
// reads pods' pids as 0 rather than reporting every pod gone.
func TestCgroupReaderWithoutPids(t *testing.T) {
	l, root := fakeLayout(t, "-", "cpu", "cpuacct", "memory")
	r := newCgroupReader(l)
	if r.pids != "" || r.cpu != filepath.Join(root, "cpuacct") || r.memory != filepath.Join(root, "memory") {
		t.Fatalf("reader over %s: %+v", l, r)
	}
	path := "/husk/pod"
	writeFiles(t, filepath.Join(root, "cpuacct", path), map[string]string{"cpuacct.usage": "7\n"})
	writeFiles(t, filepath.Join(root, "memory", path), map[string]string{"memory.usage_in_bytes": "4096\n", "memory.stat": "total_rss 4096\n"})
	st, err := r.read(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if u := usageFrom(st, false); u.CPUNanos != 7 || u.MemUsage != 4096 || u.Pids != 0 {
		t.Fatalf("read without pids: %+v", u)
	}

	// cpu and cpuacct joined: cpuacct.usage is in the joined hierarchy.
	l, root = fakeLayout(t, "-", "cpu,cpuacct", "memory", "pids")
	if r := newCgroupReader(l); r.cpu != filepath.Join(root, "cpu,cpuacct") || r.pids != filepath.Join(root, "pids") {
		t.Fatalf("reader over %s: %+v", l, r)
	}
}

// TestSystemdCgroups: under the systemd driver a pod's cgroup is the slice
// kubelet names (its path expanded as systemd does), its containers'
// cgroupsPath slice:cri-husk:id and their cgroups cri-husk-<id>.scope in
// it; what is not a slice is InvalidArgument naming it.
func TestSystemdCgroups(t *testing.T) {
	m := &Manager{cfg: Config{SystemdCgroup: true}}
	for _, c := range []struct {
		parent, slice, path string
	}{
		{"kubepods-burstable-pod1234.slice", "kubepods-burstable-pod1234.slice", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice"},
		{"kubepods.slice", "kubepods.slice", "/kubepods.slice"},
		{"", "system.slice", "/system.slice"},
		// kubelet 1.37 sends the slice's path.
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod5406.slice", "kubepods-besteffort-pod5406.slice", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod5406.slice"},
	} {
		slice, path, own, err := m.podCgroupOf(c.parent, "p1")
		if err != nil || slice != c.slice || path != c.path || own {
			t.Errorf("parent %q: slice %q path %q own %v err %v; want %q %q false", c.parent, slice, path, own, err, c.slice, c.path)
		}
		p := &Pod{ID: "p1", Slice: slice, Cgroup: path}
		if got, want := cgroupsPath(p, "c1"), c.slice+":cri-husk:c1"; got != want {
			t.Errorf("cgroupsPath: %q, want %q", got, want)
		}
		if got, want := m.ctrCgroup(path, "c1"), path+"/cri-husk-c1.scope"; got != want {
			t.Errorf("ctrCgroup: %q, want %q", got, want)
		}
	}
	for _, bad := range []string{"/kubepods/burstable/pod1", "kubepods", "a/b.slice", "-bad-.slice", "/other.slice/kubepods-pod1.slice"} {
		if _, _, _, err := m.podCgroupOf(bad, "p1"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), bad) {
			t.Errorf("parent %q under systemd: %v, want InvalidArgument naming it", bad, err)
		}
	}
	// cgroupfs is unchanged: a path below the pod's cgroup.
	fs := &Manager{}
	if _, path, own, err := fs.podCgroupOf("", "p1"); err != nil || path != "/husk/p1" || !own {
		t.Errorf("cgroupfs default parent: %q %v %v", path, own, err)
	}
	if got := cgroupsPath(&Pod{ID: "p1", Cgroup: "/husk/p1"}, "c1"); got != "/husk/p1/c1" {
		t.Errorf("cgroupfs cgroupsPath: %q", got)
	}
}
