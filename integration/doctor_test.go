package integration

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/husk-runtime/husk/integration/testenv"
	"github.com/moby/sys/mountinfo"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func randHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// pinNetns makes a network namespace pinned by a bind mount at path
// (what husk's CreateNetns does), and removes it at cleanup.
func pinNetns(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for unix.Unmount(path, unix.MNT_DETACH) == nil {
		}
		_ = os.Remove(path)
	})
	if out, err := exec.Command("unshare", "--net="+path, "true").CombinedOutput(); err != nil {
		t.Fatalf("unshare --net=%s: %v: %s", path, err, out)
	}
}

// vethInto makes a veth pair: host end name (on bridge master, if not
// ""), other end "eth0" in the netns pinned at nsPath. Cleanup deletes it.
func vethInto(t *testing.T, name, master, nsPath string) {
	t.Helper()
	f, err := os.Open(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(name); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	if master != "" {
		br, err := netlink.LinkByName(master)
		if err != nil {
			t.Fatalf("bridge %s: %v", master, err)
		}
		attrs.MasterIndex = br.Attrs().Index
	}
	v := &netlink.Veth{LinkAttrs: attrs, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(f.Fd()))}
	if err := netlink.LinkAdd(v); err != nil {
		t.Fatalf("add veth %s: %v", name, err)
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
}

// cgroupDir makes a cgroup dir and removes it at cleanup; parents it had
// to make are removed too (if empty: a daemon's pods may use them).
func cgroupDir(t *testing.T, dir string) {
	t.Helper()
	var made []string
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			break
		}
		made = append(made, p)
	}
	t.Cleanup(func() {
		for _, p := range made {
			_ = os.Remove(p)
		}
	})
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

type doctorOut struct {
	Source string `json:"source"`
	Checks []struct {
		Name, Status, Reason string
	} `json:"checks"`
	Leftovers []struct {
		Kind, Path, Pod, Reason string
	} `json:"leftovers"`
	Fixed []struct {
		Kind, Path, Pod, Done, Error string
	} `json:"fixed"`
	Remaining []struct{ Kind, Path string } `json:"remaining"`
}

func runDoctor(t *testing.T, d *Daemon, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	full := append([]string{"doctor", "--config", d.ConfigPath, "--endpoint", "unix://" + d.Socket}, args...)
	cmd := exec.Command(filepath.Join(binDir(t), "husk"), full...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestDoctor plants a leftover netns, mount, cgroup and veth of a pod husk
// does not know, next to a live pod and to things of "another runtime",
// and checks that doctor reports exactly husk's, that --fix removes them
// and says so, and that the live pod and the others' things are untouched.
func TestDoctor(t *testing.T) {
	d := StartDaemon(t)
	podCfg := podConfig("doctor")
	live := runPod(t, d, podCfg)

	// husk's leftovers, all of one pod id the daemon does not know.
	fake := randHex(t, 32)
	pin := filepath.Join(d.State, "netns", fake)
	pinNetns(t, pin)
	shm := filepath.Join(d.Root, "pods", fake, "shm")
	if err := os.MkdirAll(shm, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(shm, unix.MNT_DETACH) })
	if err := unix.Mount("shm", shm, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", shm, err)
	}
	// Left by a crash a while ago: a pod dir without a record is taken
	// for one being made for the first seconds of its life.
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(d.Root, "pods", fake), old, old); err != nil {
		t.Fatal(err)
	}
	cg := filepath.Join("/sys/fs/cgroup/memory/husk", fake)
	cgroupDir(t, cg)
	veth := "hkd" + randHex(t, 4)
	vethInto(t, veth, d.Bridge, pin)

	// "Another runtime's": a netns pinned outside husk's state, a cgroup
	// outside /husk, a veth on no husk bridge; and a /husk cgroup whose id
	// nothing of this daemon names (another husk daemon's, for all this
	// one knows).
	otherDir, err := os.MkdirTemp("", "not-husk-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(otherDir) })
	otherNs := filepath.Join(otherDir, "netns")
	pinNetns(t, otherNs)
	otherCg := "/sys/fs/cgroup/memory/not-husk-" + randHex(t, 4)
	cgroupDir(t, otherCg)
	foreignCg := filepath.Join("/sys/fs/cgroup/memory/husk", randHex(t, 32))
	cgroupDir(t, foreignCg)
	otherVeth := "nhk" + randHex(t, 4)
	vethInto(t, otherVeth, "", otherNs)

	// The audit: exactly husk's four (and the pod dir the mount sits in).
	stdout, stderr, err := runDoctor(t, d, "-o", "json")
	if exitCode(err) != 1 {
		t.Fatalf("doctor with leftovers: exit %d (%v), want 1\n%s%s", exitCode(err), err, stdout, stderr)
	}
	if !strings.Contains(stderr, "5 leftovers") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("stderr is not one line naming 5 leftovers: %q", stderr)
	}
	var rep doctorOut
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("doctor -o json: %v\n%s", err, stdout)
	}
	if rep.Source != "daemon" {
		t.Errorf("source = %q, want daemon", rep.Source)
	}
	var got []string
	for _, l := range rep.Leftovers {
		got = append(got, l.Kind+" "+l.Path)
		if l.Pod != fake {
			t.Errorf("leftover %s %s attributed to pod %q, want %s", l.Kind, l.Path, l.Pod, fake)
		}
	}
	sort.Strings(got)
	want := []string{
		"cgroup /husk/" + fake,
		"dir " + filepath.Join(d.Root, "pods", fake),
		"mount " + shm,
		"netns " + pin,
		"veth " + veth,
	}
	if !slices.Equal(got, want) {
		t.Errorf("leftovers:\n got %q\nwant %q\n%s", got, want, stdout)
	}
	foreignSeen := false
	for _, c := range rep.Checks {
		if c.Name == "leftovers/foreign" && c.Status == "warn" && strings.Contains(c.Reason, "cgroup") {
			foreignSeen = true
		}
	}
	if !foreignSeen {
		t.Errorf("no warning about the /husk cgroup of no pod of this daemon:\n%s", stdout)
	}

	// The table form: one line per check, the leftovers named.
	stdout, _, err = runDoctor(t, d)
	if exitCode(err) != 1 {
		t.Errorf("doctor (table): exit %d, want 1", exitCode(err))
	}
	for _, w := range []string{"ok    kernel/namespaces", "ok    daemon", "leftover/netns", pin, "leftover/veth", veth} {
		if !strings.Contains(stdout, w) {
			t.Errorf("table output lacks %q:\n%s", w, stdout)
		}
	}

	// --fix removes husk's and says so. It runs the fake pod's CNI DEL,
	// but the network config stays the daemon's to write.
	confPath := filepath.Join(d.CNIDir, "99-husk-default.conflist")
	confBefore, err := os.ReadFile(confPath)
	if err != nil {
		t.Fatal(err)
	}
	leases, _ := filepath.Glob(filepath.Join(d.Root, "cni", "networks", "*", "10.*"))
	stdout, stderr, err = runDoctor(t, d, "--fix")
	if err != nil {
		t.Fatalf("doctor --fix: %v\n%s%s", err, stdout, stderr)
	}
	for _, w := range []string{
		"removed mount " + shm + ": unmounted",
		"removed veth " + veth + ": ",
		"removed netns " + pin + ": ",
		"removed cgroup /husk/" + fake + ": removed",
		"removed dir " + filepath.Join(d.Root, "pods", fake) + ": removed",
		"no leftovers remain",
	} {
		if !strings.Contains(stdout, w) {
			t.Errorf("--fix output lacks %q:\n%s", w, stdout)
		}
	}
	for _, p := range []string{pin, shm, cg, filepath.Join(d.Root, "pods", fake)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there after --fix (stat: %v)", p, err)
		}
	}
	if _, err := netlink.LinkByName(veth); err == nil {
		t.Errorf("veth %s still there after --fix", veth)
	}

	if confAfter, _ := os.ReadFile(confPath); string(confAfter) != string(confBefore) {
		t.Errorf("--fix changed the daemon's CNI config:\n%s\nwas:\n%s", confAfter, confBefore)
	}
	if len(leases) != 1 {
		t.Errorf("IP leases before --fix: %v, want the live pod's one", leases)
	}
	for _, l := range leases {
		if _, err := os.Stat(l); err != nil {
			t.Errorf("live pod's lease: %v", err)
		}
	}

	// The live pod is untouched and Ready.
	st, err := d.RT.PodSandboxStatus(ctxT(t, 10*time.Second), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: live})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("live pod is %v after --fix", st.Status.State)
	}
	if m, err := mountinfo.Mounted(filepath.Join(d.State, "netns", live)); err != nil || !m {
		t.Errorf("live pod's netns not mounted after --fix: %v %v", m, err)
	}
	if v := vethsOn(d.Bridge); len(v) != 1 {
		t.Errorf("veths on %s after --fix: %v, want the live pod's one", d.Bridge, v)
	}
	if dirs := testenv.CgroupDirs("/husk/" + live); len(dirs) == 0 {
		t.Error("live pod's cgroups gone after --fix")
	}

	// The others' are untouched.
	if m, err := mountinfo.Mounted(otherNs); err != nil || !m {
		t.Errorf("other runtime's netns %s unmounted: %v %v", otherNs, m, err)
	}
	for _, p := range []string{otherCg, foreignCg} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("cgroup %s removed: %v", p, err)
		}
	}
	if _, err := netlink.LinkByName(otherVeth); err != nil {
		t.Errorf("other runtime's veth %s removed: %v", otherVeth, err)
	}

	// Clean now, and --fix again is a no-op.
	for _, args := range [][]string{nil, {"--fix"}} {
		stdout, stderr, err = runDoctor(t, d, args...)
		if err != nil || strings.Contains(stdout, "removed ") || !strings.Contains(stdout, "ok    leftovers") {
			t.Errorf("doctor %v after --fix: %v\n%s%s", args, err, stdout, stderr)
		}
	}
}

// Without a daemon, doctor audits from the records on disk and says so;
// a recorded pod is never taken for a leftover.
func TestDoctorWithoutDaemon(t *testing.T) {
	d := StartDaemon(t)
	live := runPod(t, d, podConfig("doctor-nodaemon"))
	d.Stop()
	// d.cleanup starts it again and removes the pod through it.

	stdout, stderr, err := runDoctor(t, d, "-o", "json")
	if err != nil {
		t.Fatalf("doctor without daemon: %v\n%s%s", err, stdout, stderr)
	}
	var rep doctorOut
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Source != "records" || len(rep.Leftovers) != 0 {
		t.Errorf("source %q, leftovers %+v; want records and none", rep.Source, rep.Leftovers)
	}
	for _, c := range rep.Checks {
		if c.Name == "daemon" && (c.Status != "warn" || !strings.Contains(c.Reason, "records")) {
			t.Errorf("daemon check does not say it audits from records: %+v", c)
		}
	}
	if _, err := os.Stat(filepath.Join(d.State, "netns", live)); err != nil {
		t.Errorf("live pod's netns: %v", err)
	}
}

func TestDoctorHelp(t *testing.T) {
	out, err := exec.Command(filepath.Join(binDir(t), "husk"), "doctor", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Examples:") || !strings.Contains(string(out), "husk doctor --fix") {
		t.Errorf("husk doctor --help: %v\n%s", err, out)
	}
	out, err = exec.Command(filepath.Join(binDir(t), "husk"), "doctor", "-o", "yaml", "--config", "/nonexistent/husk.toml").CombinedOutput()
	if exitCode(err) != 1 || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 || !strings.Contains(string(out), "-o") {
		t.Errorf("bad -o: exit %d, %q; want one line", exitCode(err), out)
	}
}
