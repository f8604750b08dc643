package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/husk-runtime/husk/integration/testenv"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// shimPids finds husk-shim processes whose command line names dir.
func shimPids(dir string) []int {
	return testenv.PidsOf("husk-shim", func(cmdline string) bool { return strings.Contains(cmdline, dir) })
}

func killShims(dir string) {
	for _, pid := range shimPids(dir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// vethsOn lists the interfaces enslaved to a bridge.
func vethsOn(bridge string) []string {
	ents, _ := os.ReadDir(filepath.Join("/sys/class/net", bridge, "brif"))
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// assertPodGone checks that nothing named after a removed pod is left: its
// shim, netns, mounts, state dir, socket, cgroups and hostport rules.
func assertPodGone(t *testing.T, d *Daemon, podID string) {
	t.Helper()
	sock := filepath.Join(d.State, "s", podID[:12]+".sock")
	// The shim exits on its own right after acknowledging shutdown.
	waitGone := time.Now().Add(5 * time.Second)
	for len(shimPids(sock)) > 0 && time.Now().Before(waitGone) {
		time.Sleep(20 * time.Millisecond)
	}
	if pids := shimPids(sock); len(pids) > 0 {
		t.Errorf("shim of pod %s still runs: %v", podID, pids)
	}
	for _, dir := range []string{filepath.Join(d.Root, "pods", podID), filepath.Join(d.State, "netns", podID)} {
		if ms := testenv.MountsUnder(dir); len(ms) > 0 {
			t.Errorf("mounts left under %s: %v", dir, ms)
		}
	}
	// The infra's state under each runtime's root, husk-oci's and the
	// external handlers' (<state>/runtimes/<name>).
	states, _ := filepath.Glob(filepath.Join(d.State, "runtimes", "*", podID))
	for _, p := range append([]string{filepath.Join(d.Root, "pods", podID), filepath.Join(d.State, "netns", podID), sock, filepath.Join(d.State, "oci", podID)}, states...) {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left (stat: %v)", p, err)
		}
	}
	if dirs := testenv.CgroupDirs("/husk/" + podID); len(dirs) > 0 {
		t.Errorf("cgroups left: %v", dirs)
	}
	out, err := exec.Command("iptables-save", "-t", "nat").CombinedOutput()
	if err != nil {
		t.Errorf("iptables-save: %v: %s", err, out)
		return
	}
	var rules []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, podID) {
			rules = append(rules, l)
		}
	}
	if len(rules) > 0 {
		t.Errorf("iptables rules of pod %s left: %v", podID, rules)
	}
}

// assertDaemonClean checks that a daemon with no pods left has nothing
// running or mounted: no shim, mount, libcontainer state, veth or IP lease.
func assertDaemonClean(t *testing.T, d *Daemon) {
	t.Helper()
	waitGone := time.Now().Add(5 * time.Second)
	for len(shimPids(d.State)) > 0 && time.Now().Before(waitGone) {
		time.Sleep(20 * time.Millisecond)
	}
	if pids := shimPids(d.State); len(pids) > 0 {
		t.Errorf("shim processes left: %v", pids)
	}
	var ms []string
	for _, m := range testenv.MountsUnder(d.Dir) {
		if m != d.Root || !d.rootOnTmpfs { // the harness's own (RootSizeMB)
			ms = append(ms, m)
		}
	}
	if len(ms) > 0 {
		t.Errorf("mounts left under %s: %v", d.Dir, ms)
	}
	if oci, _ := os.ReadDir(filepath.Join(d.State, "oci")); len(oci) > 0 {
		var names []string
		for _, e := range oci {
			names = append(names, e.Name())
		}
		t.Errorf("libcontainer state left: %v", names)
	}
	if states, _ := filepath.Glob(filepath.Join(d.State, "runtimes", "*", "*")); len(states) > 0 {
		t.Errorf("runtime handlers' container state left: %v", states)
	}
	if v := vethsOn(d.Bridge); len(v) > 0 {
		t.Errorf("veths left on %s: %v", d.Bridge, v)
	}
	if leases, _ := filepath.Glob(filepath.Join(d.Root, "cni", "networks", "*", "10.*")); len(leases) > 0 {
		t.Errorf("IP leases left: %v", leases)
	}
	if pods, _ := os.ReadDir(filepath.Join(d.Root, "pods")); len(pods) > 0 {
		t.Errorf("pod dirs left: %d", len(pods))
	}
}

// removePod stops and removes a pod through the CRI, as kubelet ends one,
// and checks that nothing named after it is left.
func removePod(t *testing.T, d *Daemon, podID string) {
	t.Helper()
	ctx := ctxT(t, 2*time.Minute)
	if _, err := d.RT.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, d, podID)
}

// removePodCgroups kills what runs in the cgroups of the pods recorded
// under root and removes those cgroups: the last resort of a test cleanup.
func removePodCgroups(root string) {
	ents, _ := os.ReadDir(filepath.Join(root, "pods"))
	for _, e := range ents {
		for _, dir := range testenv.CgroupDirs("/husk/" + e.Name()) {
			_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
				if err == nil && info.Name() == "cgroup.procs" {
					data, _ := os.ReadFile(p)
					for _, f := range strings.Fields(string(data)) {
						if pid, err := strconv.Atoi(f); err == nil {
							_ = syscall.Kill(pid, syscall.SIGKILL)
						}
					}
				}
				return nil
			})
		}
		time.Sleep(100 * time.Millisecond)
		testenv.RemoveCgroupTree("/husk/" + e.Name())
	}
	// The daemon drops the shared parent as it stops, unless a pod cgroup
	// removed only here was still in it; rmdir keeps one another husk uses.
	for _, dir := range testenv.CgroupDirs("/husk") {
		_ = os.Remove(dir)
	}
}

// husk's shared parent cgroup (/husk, for pods that name none) outlives
// its last pod while the daemon runs, so the next pod does not re-create
// it in every hierarchy (see sandbox.Manager.ReleaseCgroups), and goes
// with the daemon, so the node is left as it was.
func TestCgroupParentKeptWhileDaemonRuns(t *testing.T) {
	if len(podCgroups()) > 0 {
		t.Skip("pods of another husk use /husk: its removal cannot be checked")
	}
	d := StartDaemon(t)
	removePod(t, d, runPod(t, d, podConfig("parent")))
	if dirs := testenv.CgroupDirs("/husk"); len(dirs) == 0 {
		t.Error("/husk removed with the last pod; want it kept while the daemon runs")
	}
	d.Stop()
	if dirs := testenv.CgroupDirs("/husk"); len(dirs) > 0 {
		t.Errorf("/husk left after the daemon stopped: %v", dirs)
	}
}
