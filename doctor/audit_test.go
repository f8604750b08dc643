package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/husk-runtime/husk/sandbox"
	"golang.org/x/sys/unix"
)

func id(c byte) string { return strings.Repeat(string(c), 64) }

var (
	livePod  = id('a')
	deadPod  = id('d')
	otherPod = id('f') // a /husk cgroup nothing of this husk names
	newPod   = id('c') // being created: record in state creating
)

// fakeNode is a husk root and state dir, a mount table, /proc, cgroup
// hierarchies and a bridge, all under a temp dir, with the host calls
// logged in the order they are made.
type fakeNode struct {
	t      *testing.T
	dir    string
	cfg    Config
	host   *Host
	mounts map[string]string // mount point -> "fstype superopts"
	ports  []Port
	nsids  map[string]int // netns pin path -> nsid
	procs  map[int][]string
	calls  []string
}

func newFakeNode(t *testing.T) *fakeNode {
	t.Helper()
	dir := t.TempDir()
	n := &fakeNode{t: t, dir: dir, mounts: map[string]string{}, nsids: map[string]int{}, procs: map[int][]string{}}
	n.cfg = Config{Root: filepath.Join(dir, "root"), State: filepath.Join(dir, "run"), Bridge: "hk0"}
	n.host = &Host{
		Proc: filepath.Join(dir, "proc"), Sys: filepath.Join(dir, "sys"), MountInfo: filepath.Join(dir, "mountinfo"),
		Links: (*fakeLinks)(n),
		Unmount: func(p string) error {
			if _, ok := n.mounts[p]; !ok {
				return unix.EINVAL
			}
			n.calls = append(n.calls, "umount "+p)
			delete(n.mounts, p)
			n.writeMounts()
			return nil
		},
		Kill: func(pid int, sig syscall.Signal) error {
			n.calls = append(n.calls, fmt.Sprintf("kill %d", pid))
			if _, ok := n.procs[pid]; !ok {
				return syscall.ESRCH
			}
			delete(n.procs, pid)
			n.writeProcs()
			return nil
		},
		Teardown: func(_ context.Context, pod, netns string) error {
			n.calls = append(n.calls, "cni-del "+short(pod)+" "+netns)
			// What host-local and bridge would do: release the lease,
			// delete the pod's veth from inside its netns.
			leases, _ := filepath.Glob(filepath.Join(n.cfg.ipamDir(), "*", "10.*"))
			for _, l := range leases {
				if leaseOwner(l) == pod {
					os.Remove(l)
				}
			}
			return nil
		},
		Now: time.Now,
	}
	return n
}

type fakeLinks fakeNode

func (f *fakeLinks) Ports(bridge string) ([]Port, error) {
	if bridge != "hk0" {
		return nil, nil
	}
	return f.ports, nil
}
func (f *fakeLinks) NsID(path string) (int, error) {
	if id, ok := f.nsids[path]; ok {
		return id, nil
	}
	return -1, nil
}
func (f *fakeLinks) Exists(name string) bool {
	return slices.ContainsFunc(f.ports, func(p Port) bool { return p.Name == name })
}
func (f *fakeLinks) Delete(name string) error {
	f.calls = append(f.calls, "link-del "+name)
	f.ports = slices.DeleteFunc(f.ports, func(p Port) bool { return p.Name == name })
	return nil
}

func (n *fakeNode) mkdir(p string) string {
	n.t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		n.t.Fatal(err)
	}
	return p
}

func (n *fakeNode) write(p, data string) string {
	n.t.Helper()
	n.mkdir(filepath.Dir(p))
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		n.t.Fatal(err)
	}
	return p
}

func (n *fakeNode) mount(mp, fstype, opts string) {
	n.mounts[mp] = fstype + " " + opts
	n.writeMounts()
}

func (n *fakeNode) writeMounts() {
	var mps []string
	for mp := range n.mounts {
		mps = append(mps, mp)
	}
	sort.Strings(mps)
	var b strings.Builder
	for i, mp := range mps {
		f := strings.Fields(n.mounts[mp])
		fmt.Fprintf(&b, "%d 1 0:%d / %s rw,relatime - %s none %s\n", i+10, i+10, mp, f[0], f[1])
	}
	if err := os.WriteFile(n.host.MountInfo, []byte(b.String()), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

func (n *fakeNode) proc(pid int, args ...string) {
	n.procs[pid] = args
	n.writeProcs()
}

func (n *fakeNode) writeProcs() {
	os.RemoveAll(n.host.Proc)
	n.mkdir(n.host.Proc)
	for pid, args := range n.procs {
		n.write(filepath.Join(n.host.Proc, fmt.Sprint(pid), "cmdline"), strings.Join(args, "\x00")+"\x00")
	}
}

func (n *fakeNode) record(p sandbox.Pod) {
	b, _ := json.Marshal(p)
	n.write(filepath.Join(n.cfg.podsDir(), p.ID, "pod.json"), string(b))
}

func staticList(pods ...string) Lister {
	return func(context.Context) (Known, error) {
		k := Known{Source: "test", Pods: map[string]bool{}, Containers: map[string]bool{}}
		for _, p := range pods {
			k.Pods[p] = true
		}
		return k, nil
	}
}

// plant builds a node with one live pod, one in creation, one dead pod's
// leftovers of every kind, and things of others next to them.
func plant(t *testing.T) *fakeNode {
	n := newFakeNode(t)
	c := n.cfg
	// Cgroup hierarchies (v1 hybrid).
	memCg := n.mkdir(filepath.Join(n.dir, "cg", "memory"))
	cpuCg := n.mkdir(filepath.Join(n.dir, "cg", "cpu"))
	n.mount(memCg, "cgroup", "rw,memory")
	n.mount(cpuCg, "cgroup", "rw,cpu")

	// The live pod: record, shm, netns, veth, lease, cgroup, shim.
	n.record(sandbox.Pod{ID: livePod, State: sandbox.PodReady, Cgroup: "/husk/" + livePod, OwnCgroup: true})
	n.mkdir(filepath.Join(c.podsDir(), livePod, "shm"))
	n.mount(filepath.Join(c.podsDir(), livePod, "shm"), "tmpfs", "rw")
	n.write(filepath.Join(c.netnsDir(), livePod), "")
	n.mount(filepath.Join(c.netnsDir(), livePod), "nsfs", "rw")
	n.nsids[filepath.Join(c.netnsDir(), livePod)] = 2
	n.write(filepath.Join(c.ipamDir(), "husk-default", "10.0.0.3"), livePod+"\r\neth0")
	n.mkdir(filepath.Join(memCg, "husk", livePod))
	n.proc(101, "/usr/bin/husk-shim", "--id", livePod, "--socket", filepath.Join(c.shimSockDir(), livePod[:12]+".sock"))
	n.write(filepath.Join(c.shimSockDir(), livePod[:12]+".sock"), "")

	// A pod being created right now: record, netns, nothing listed yet.
	n.record(sandbox.Pod{ID: newPod, State: sandbox.PodCreating, CreatedAt: time.Now()})
	n.write(filepath.Join(c.netnsDir(), newPod), "")
	n.mount(filepath.Join(c.netnsDir(), newPod), "nsfs", "rw")

	// The dead pod: a dir with no record, shm, netns, veth, lease, cgroup
	// in two hierarchies, a shim, a shim socket.
	n.mkdir(filepath.Join(c.podsDir(), deadPod, "shm"))
	n.mount(filepath.Join(c.podsDir(), deadPod, "shm"), "tmpfs", "rw")
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(c.podsDir(), deadPod), old, old)
	n.write(filepath.Join(c.netnsDir(), deadPod), "")
	n.mount(filepath.Join(c.netnsDir(), deadPod), "nsfs", "rw")
	n.nsids[filepath.Join(c.netnsDir(), deadPod)] = 1
	n.write(filepath.Join(c.ipamDir(), "husk-default", "10.0.0.2"), deadPod+"\r\neth0")
	n.write(filepath.Join(c.ipamDir(), "husk-default", "lock"), "")
	n.write(filepath.Join(c.ipamDir(), "husk-default", "last_reserved_ip.0"), "10.0.0.3")
	n.mkdir(filepath.Join(memCg, "husk", deadPod, "sub"))
	n.mkdir(filepath.Join(cpuCg, "husk", deadPod))
	n.proc(100, "/usr/bin/husk-shim", "--id", deadPod, "--socket", filepath.Join(c.shimSockDir(), deadPod[:12]+".sock"))
	n.write(filepath.Join(c.shimSockDir(), deadPod[:12]+".sock"), "")

	n.ports = []Port{
		{Name: "vethlive", PeerNsID: 2},
		{Name: "vethdead", PeerNsID: 1},
		{Name: "vethlost", PeerNsID: 7}, // its netns has no pin of husk's
		{Name: "hostport", PeerNsID: -1},
	}

	// Others': a netns outside husk's state, a non-id file in husk's netns
	// dir, a cgroup outside /husk, a /husk cgroup nothing here names,
	// another daemon's shim, another process.
	n.write(filepath.Join(n.dir, "netns", "other"), "")
	n.mount(filepath.Join(n.dir, "netns", "other"), "nsfs", "rw")
	n.write(filepath.Join(c.netnsDir(), "README"), "")
	n.mkdir(filepath.Join(memCg, "not-husk"))
	n.mkdir(filepath.Join(memCg, "husk", otherPod))
	n.proc(102, "/usr/bin/husk-shim", "--id", otherPod, "--socket", filepath.Join(n.dir, "other", "s", otherPod[:12]+".sock"))
	n.proc(103, "/bin/sh", "-c", "husk-shim --id "+deadPod)
	return n
}

func summary(ls []Leftover) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Kind+" "+l.Path+" "+short(l.Pod))
	}
	return out
}

func TestAuditFindsOnlyHusksLeftovers(t *testing.T) {
	n := plant(t)
	c := n.cfg
	a, err := RunAudit(context.Background(), c, n.host, staticList(livePod))
	if err != nil {
		t.Fatal(err)
	}
	d := short(deadPod)
	want := []string{
		"shim pid 100 " + d,
		"mount " + filepath.Join(c.podsDir(), deadPod, "shm") + " " + d,
		"lease " + filepath.Join(c.ipamDir(), "husk-default", "10.0.0.2") + " " + d,
		"veth vethdead " + d,
		"veth vethlost ",
		"netns " + filepath.Join(c.netnsDir(), deadPod) + " " + d,
		"cgroup /husk/" + deadPod + " " + d,
		"dir " + filepath.Join(c.podsDir(), deadPod) + " " + d,
		"dir " + filepath.Join(c.shimSockDir(), deadPod[:12]+".sock") + " " + d,
	}
	if got := summary(a.Leftovers); !slices.Equal(got, want) {
		t.Errorf("leftovers:\n got %q\nwant %q", got, want)
	}
	if want := []string{"/husk/" + otherPod}; !slices.Equal(a.Foreign, want) {
		t.Errorf("foreign cgroups = %q, want %q", a.Foreign, want)
	}
	for _, l := range a.Leftovers {
		if l.Kind == KindCgroup && len(l.dirs) != 2 {
			t.Errorf("cgroup leftover in %d hierarchies, want 2: %v", len(l.dirs), l.dirs)
		}
	}
}

// A pod the daemon starts listing between the two lists of an audit has
// none of its parts taken for leftovers.
func TestAuditListsAgainAfterScan(t *testing.T) {
	n := plant(t)
	calls := 0
	list := func(ctx context.Context) (Known, error) {
		calls++
		if calls == 1 {
			return staticList(livePod)(ctx)
		}
		return staticList(livePod, deadPod)(ctx)
	}
	a, err := RunAudit(context.Background(), n.cfg, n.host, list)
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(a.Leftovers); !slices.Equal(got, []string{"veth vethlost "}) {
		t.Errorf("leftovers = %q, want only the unattributed veth", got)
	}
}

func TestFixRemovesInOrderAndIsIdempotent(t *testing.T) {
	n := plant(t)
	c := n.cfg
	ctx := context.Background()
	a, err := RunAudit(ctx, c, n.host, staticList(livePod))
	if err != nil {
		t.Fatal(err)
	}
	acts, err := Fix(ctx, c, n.host, staticList(livePod), a.Leftovers)
	if err != nil {
		t.Fatalf("fix: %v (%+v)", err, acts)
	}
	deadNetns := filepath.Join(c.netnsDir(), deadPod)
	wantCalls := []string{
		"kill 100",
		"umount " + filepath.Join(c.podsDir(), deadPod, "shm"),
		"cni-del " + short(deadPod) + " " + deadNetns, // while the netns is pinned
		"link-del vethdead",
		"link-del vethlost",
		"umount " + deadNetns,
	}
	if !slices.Equal(n.calls, wantCalls) {
		t.Errorf("host calls:\n got %q\nwant %q", n.calls, wantCalls)
	}
	if len(acts) != len(a.Leftovers) {
		t.Errorf("%d actions for %d leftovers: %+v", len(acts), len(a.Leftovers), acts)
	}
	for _, p := range []string{
		deadNetns, filepath.Join(c.podsDir(), deadPod), filepath.Join(c.ipamDir(), "husk-default", "10.0.0.2"),
		filepath.Join(n.dir, "cg", "memory", "husk", deadPod), filepath.Join(n.dir, "cg", "cpu", "husk", deadPod),
		filepath.Join(c.shimSockDir(), deadPod[:12]+".sock"),
	} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there (stat: %v)", p, err)
		}
	}
	// Nothing of the live pod, the pod in creation or anyone else's.
	for _, p := range []string{
		filepath.Join(c.podsDir(), livePod, "pod.json"), filepath.Join(c.netnsDir(), livePod), filepath.Join(c.netnsDir(), newPod),
		filepath.Join(c.netnsDir(), "README"), filepath.Join(c.ipamDir(), "husk-default", "10.0.0.3"),
		filepath.Join(n.dir, "cg", "memory", "husk", livePod), filepath.Join(n.dir, "cg", "memory", "husk", otherPod),
		filepath.Join(n.dir, "cg", "memory", "not-husk"), filepath.Join(n.dir, "netns", "other"),
		filepath.Join(c.shimSockDir(), livePod[:12]+".sock"),
	} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	for _, mp := range []string{filepath.Join(c.podsDir(), livePod, "shm"), filepath.Join(n.dir, "netns", "other")} {
		if _, ok := n.mounts[mp]; !ok {
			t.Errorf("%s was unmounted", mp)
		}
	}
	if _, ok := n.procs[101]; !ok {
		t.Error("the live pod's shim was killed")
	}

	// Again: nothing left to find, nothing to do.
	n.calls = nil
	a, err = RunAudit(ctx, c, n.host, staticList(livePod))
	if err != nil || len(a.Leftovers) != 0 {
		t.Fatalf("after fix: %v, leftovers %q", err, summary(a.Leftovers))
	}
	if acts, err := Fix(ctx, c, n.host, staticList(livePod), nil); err != nil || len(acts) != 0 || len(n.calls) != 0 {
		t.Errorf("second fix: %v, %+v, calls %q", err, acts, n.calls)
	}
}

// A leftover whose pod has become live by the time Fix runs is left alone.
func TestFixSkipsPodLiveNow(t *testing.T) {
	n := plant(t)
	ctx := context.Background()
	a, err := RunAudit(ctx, n.cfg, n.host, staticList(livePod))
	if err != nil {
		t.Fatal(err)
	}
	acts, err := Fix(ctx, n.cfg, n.host, staticList(livePod, deadPod), a.Leftovers)
	if err == nil {
		t.Fatal("fix reported no error for leftovers it left alone")
	}
	for _, a := range acts {
		if a.Pod == deadPod && (a.Error == "" || !strings.Contains(a.Error, "live now")) {
			t.Errorf("%s %s of the now live pod: %q %q", a.Kind, a.Path, a.Done, a.Error)
		}
	}
	if _, err := os.Stat(filepath.Join(n.cfg.netnsDir(), deadPod)); err != nil {
		t.Errorf("netns of the now live pod removed: %v", err)
	}
	if slices.Contains(n.calls, "kill 100") {
		t.Error("shim of the now live pod killed")
	}
}

// Without the daemon, every pod with a record counts as live; a pod dir
// without one does not.
func TestFromRecords(t *testing.T) {
	n := plant(t)
	k, err := FromRecords(n.cfg, time.Now)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !k.Pods[livePod] || !k.Pods[newPod] || k.Pods[deadPod] || k.Source != "records" {
		t.Errorf("known = %+v", k)
	}
}

// A dir removal never crosses a mount.
func TestRemoveDirRefusesMounts(t *testing.T) {
	n := newFakeNode(t)
	dir := n.mkdir(filepath.Join(n.cfg.podsDir(), deadPod, "shm"))
	n.mount(dir, "tmpfs", "rw")
	_, err := n.host.removeDir(Leftover{Kind: KindDir, Path: filepath.Dir(dir)})
	if err == nil || !strings.Contains(err.Error(), "still has mounts") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
}
