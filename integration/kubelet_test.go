package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/husk-runtime/husk/integration/testenv"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// kubeletSysctls are the host-wide tunables kubelet's container manager
// sets when protectKernelDefaults is false; the test puts them back.
var kubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

const kubeletNode = "husk-node"

// TestKubelet drives husk with an upstream kubelet (bin/kubelet, built by
// `make kubelet`) in standalone mode: static pods only, no API server.
// kubelet runs in a network namespace of its own with only a loopback, so
// it reaches nothing but itself and husk's unix socket, and its iptables
// chains die with that namespace.
func TestKubelet(t *testing.T) {
	requireRoot(t)
	kubeletBin, err := filepath.Abs("../bin/kubelet")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(kubeletBin); err != nil {
		t.Fatalf("bin/kubelet missing: run make kubelet (%v)", err)
	}
	ref := busyboxRef(t)
	d := StartDaemon(t)
	pull(t, d, ref)

	dir, err := os.MkdirTemp("", "husk-kl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = unix.Unmount(filepath.Join(dir, "root"), 0) // kubelet's own, see below
		if ms := testenv.MountsUnder(dir); len(ms) > 0 {
			t.Errorf("mounts left under kubelet's dir: %v", ms)
			testenv.UnmountUnder(dir)
		}
		_ = os.RemoveAll(dir)
	})

	// Host sysctls kubelet changes: restored however the test ends.
	saved := map[string]string{}
	for _, k := range kubeletSysctls {
		b, err := os.ReadFile("/proc/sys/" + k)
		if err != nil {
			t.Fatal(err)
		}
		saved[k] = strings.TrimSpace(string(b))
	}
	t.Cleanup(func() {
		for _, k := range kubeletSysctls {
			b, _ := os.ReadFile("/proc/sys/" + k)
			if now := strings.TrimSpace(string(b)); now != saved[k] {
				t.Logf("restoring sysctl %s: %s -> %s", k, now, saved[k])
				if err := os.WriteFile("/proc/sys/"+k, []byte(saved[k]), 0o644); err != nil {
					t.Errorf("restore sysctl %s: %v", k, err)
				}
			}
		}
	})

	// Paths kubelet uses whatever its flags say: the device plugin socket
	// dir, the /var/log/containers symlinks and mount(8)'s utab dir (kubelet
	// bind-mounts its root dir). The test removes what kubelet created.
	var created []string
	for _, p := range []string{"/var/lib/kubelet", "/var/lib/kubelet/device-plugins", "/var/log/containers", "/run/mount"} {
		if _, err := os.Lstat(p); os.IsNotExist(err) {
			created = append(created, p)
		}
	}
	t.Cleanup(func() {
		// Symlinks into this test's pod logs, whoever made the dir.
		links, _ := filepath.Glob("/var/log/containers/*")
		for _, l := range links {
			if target, err := os.Readlink(l); err == nil && strings.HasPrefix(target, dir+"/") {
				_ = os.Remove(l)
			}
		}
		_ = os.Remove("/var/lib/kubelet/device-plugins/kubelet.sock")
		for i := len(created) - 1; i >= 0; i-- {
			if err := os.Remove(created[i]); err != nil && !os.IsNotExist(err) {
				t.Errorf("remove %s kubelet created: %v", created[i], err)
			}
		}
	})

	// cgroupRoot must exist in every hierarchy before kubelet starts.
	cgRoot := "/" + filepath.Base(dir)
	for _, root := range cgroupMountpoints(t) {
		if err := os.Mkdir(filepath.Join(root, cgRoot), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		// husk's pods sit in kubelet's pod cgroups: remove them first.
		if d.RT != nil && d.serving() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			if resp, err := d.RT.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
				for _, p := range resp.Items {
					_, _ = d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id})
				}
			}
			cancel()
		}
		testenv.RemoveCgroupTree(cgRoot)
		if dirs := testenv.CgroupDirs(cgRoot); len(dirs) > 0 {
			t.Errorf("cgroupRoot left: %v", dirs)
		}
	})

	manifests := filepath.Join(dir, "manifests")
	for _, p := range []string{manifests, filepath.Join(dir, "root"), filepath.Join(dir, "logs"), filepath.Join(dir, "volume-plugins"), filepath.Join(dir, "pki")} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const readOnlyPort = 10255
	cfg := standaloneKubelet{Port: 10250, ReadOnlyPort: readOnlyPort, HealthzPort: 10248, StaticPodPath: manifests,
		CgroupDriver: "cgroupfs", CgroupRoot: cgRoot, Endpoint: "unix://" + d.Socket,
		PodLogsDir: filepath.Join(dir, "logs"), VolumePluginDir: filepath.Join(dir, "volume-plugins"), StatsFromCRI: true}.yaml()
	cfgPath := filepath.Join(dir, "kubelet.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	// multi: an init container leaves a file in an emptyDir for "main";
	// "probed" fails its exec liveness probe on purpose and exits 3 on TERM.
	writeFile(t, filepath.Join(manifests, "multi.yaml"), fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: multi
  namespace: husk-kubelet
spec:
  terminationGracePeriodSeconds: 5
  volumes:
  - name: work
    emptyDir: {}
  initContainers:
  - name: init
    image: %[1]s
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo from-init > /work/ready"]
    volumeMounts:
    - {name: work, mountPath: /work}
  containers:
  - name: main
    image: %[1]s
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "cat /work/ready || exit 1; echo main-up; trap 'exit 0' TERM; sleep 3600 & wait"]
    volumeMounts:
    - {name: work, mountPath: /work}
  - name: probed
    image: %[1]s
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo probed-up; trap 'exit 3' TERM; sleep 3600 & wait"]
    livenessProbe:
      exec:
        command: ["sh", "-c", "exit 1"]
      initialDelaySeconds: 1
      periodSeconds: 1
      failureThreshold: 1
`, ref))
	// mapped: hostUsers: false, a pod in a user namespace of its own that
	// kubelet allocates (husk advertises the feature in Status).
	writeFile(t, filepath.Join(manifests, "mapped.yaml"), fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: mapped
  namespace: husk-kubelet
spec:
  hostUsers: false
  terminationGracePeriodSeconds: 2
  containers:
  - name: inside
    image: %s
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "cat /proc/self/uid_map; id -u; trap 'exit 0' TERM; sleep 3600 & wait"]
`, ref))
	doomedManifest := filepath.Join(manifests, "doomed.yaml")
	writeFile(t, doomedManifest, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: doomed
  namespace: husk-kubelet
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: sleeper
    image: %s
    imagePullPolicy: Never
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
`, ref))

	// kubelet, in a netns of its own with loopback up.
	logPath := filepath.Join(dir, "kubelet.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("unshare", "--net", "--", "sh", "-c", `ip link set lo up && exec "$0" "$@"`, kubeletBin,
		"--config="+cfgPath,
		"--root-dir="+filepath.Join(dir, "root"),
		"--cert-dir="+filepath.Join(dir, "pki"),
		"--hostname-override="+kubeletNode,
		"--node-ip=127.0.0.1",
		"--v=2")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kubelet: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopKubelet := func() {
		if cmd.Process == nil {
			return
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		cmd.Process = nil
	}
	t.Cleanup(func() {
		stopKubelet()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("kubelet log (%s):\n%s", logPath, tail(string(b), 150))
		}
	})

	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: dialInNetns(cmd.Process.Pid)}}
	pods := func() map[string]klPod {
		resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/pods", readOnlyPort))
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var l struct{ Items []klPod }
		if err := json.Unmarshal(b, &l); err != nil {
			return nil
		}
		out := map[string]klPod{}
		for _, p := range l.Items {
			out[p.Metadata.Name] = p
		}
		return out
	}
	alive := func() {
		select {
		case err := <-exited:
			cmd.Process = nil
			t.Fatalf("kubelet exited: %v", err)
		default:
		}
	}
	waitPods := func(timeout time.Duration, what string, cond func(map[string]klPod) bool) map[string]klPod {
		t.Helper()
		var last map[string]klPod
		waitFor(t, timeout, what, func() bool {
			alive()
			last = pods()
			return last != nil && cond(last)
		})
		return last
	}

	multi, doomed, mapped := "multi-"+kubeletNode, "doomed-"+kubeletNode, "mapped-"+kubeletNode
	ps := waitPods(3*time.Minute, "the static pods running", func(m map[string]klPod) bool {
		return m[multi].Status.Phase == "Running" && m[doomed].Status.Phase == "Running" && m[mapped].Status.Phase == "Running" &&
			m[multi].running("main") && m[multi].running("probed") && m[doomed].running("sleeper") && m[mapped].running("inside")
	})
	t.Logf("kubelet runs %s (uid %s) and %s (uid %s)", multi, ps[multi].Metadata.UID, doomed, ps[doomed].Metadata.UID)

	// The init container ran to completion before main, which read its file.
	initSt := ps[multi].Status.InitContainerStatuses
	if len(initSt) != 1 || initSt[0].State.Terminated == nil || initSt[0].State.Terminated.ExitCode != 0 {
		t.Fatalf("init container status: %+v", initSt)
	}
	hctrs := huskContainers(t, d, ps[multi].Metadata.UID)
	if c := hctrs["init"]; len(c) != 1 || c[0].State != runtimeapi.ContainerState_CONTAINER_EXITED || c[0].ExitCode != 0 {
		t.Fatalf("husk's init container: %+v", c)
	}
	if c := hctrs["main"]; len(c) != 1 || c[0].StartedAt < hctrs["init"][0].FinishedAt {
		t.Fatalf("husk's main container (init finished at %d): %+v", hctrs["init"][0].FinishedAt, c)
	}
	mainLog := filepath.Join(dir, "logs", "husk-kubelet_"+multi+"_"+ps[multi].Metadata.UID, "main", "0.log")
	waitFor(t, 10*time.Second, "main's log to show init's file", func() bool {
		b, _ := os.ReadFile(mainLog)
		return strings.Contains(string(b), "from-init") && strings.Contains(string(b), "main-up")
	})

	// /metrics/cadvisor, from husk's ListPodSandboxMetrics: kubelet's
	// cAdvisor cannot name the containers of a runtime it has no handler
	// for, so a kubelet on husk takes pod and container stats from the CRI
	// (the gate above; the node e2e ContainerMetrics spec skips itself under
	// it). The series carry the Kubernetes names, as cAdvisor's do.
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics/cadvisor", readOnlyPort)
	ctrLabels := fmt.Sprintf(`namespace="husk-kubelet",pod=%q`, multi)
	var metricsBody string
	waitFor(t, time.Minute, "main's series in /metrics/cadvisor", func() bool {
		resp, err := hc.Get(metricsURL)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		metricsBody = string(b)
		return strings.Contains(metricsBody, `container="main"`)
	})
	for _, name := range []string{"container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "container_memory_rss",
		"container_threads", "container_start_time_seconds", "container_last_seen", "container_fs_usage_bytes"} {
		if !regexp.MustCompile(`(?m)^` + name + `\{[^}]*container="main"[^}]*` + regexp.QuoteMeta(ctrLabels) + `[^}]*\} `).MatchString(metricsBody) {
			t.Errorf("/metrics/cadvisor has no %s of main in %s", name, multi)
		}
	}
	if !regexp.MustCompile(`(?m)^container_network_receive_bytes_total\{container="POD"[^}]*` + regexp.QuoteMeta(ctrLabels) + `[^}]*\} [0-9]`).MatchString(metricsBody) {
		t.Errorf("/metrics/cadvisor has no network series of %s's sandbox", multi)
	}

	// The hostUsers: false pod: root inside, an unprivileged range outside,
	// as kubelet allocated it and husk applied it.
	mappedSandboxes := huskSandboxes(t, d, ps[mapped].Metadata.UID)
	if len(mappedSandboxes) != 1 {
		t.Fatalf("husk has %d sandboxes of mapped", len(mappedSandboxes))
	}
	mst, err := d.RT.PodSandboxStatus(ctxT(t, time.Minute), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: mappedSandboxes[0]})
	if err != nil {
		t.Fatal(err)
	}
	uns := mst.Status.GetLinux().GetNamespaces().GetOptions().GetUsernsOptions()
	if uns.GetMode() != runtimeapi.NamespaceMode_POD || len(uns.GetUids()) != 1 || uns.GetUids()[0].GetHostId() == 0 {
		t.Fatalf("user namespace of mapped as husk reports it: %v", uns)
	}
	mappedLog := filepath.Join(dir, "logs", "husk-kubelet_"+mapped+"_"+ps[mapped].Metadata.UID, "inside", "0.log")
	wantMap := fmt.Sprintf(" 0 %d %d", uns.GetUids()[0].GetHostId(), uns.GetUids()[0].GetLength())
	waitFor(t, 10*time.Second, "mapped's log to show its uid map and uid 0", func() bool {
		b, _ := os.ReadFile(mappedLog)
		var fields []string
		for _, l := range strings.Split(string(b), "\n") {
			// CRI log lines: time stream tag message
			if f := strings.SplitN(l, " ", 4); len(f) == 4 {
				fields = append(fields, " "+strings.Join(strings.Fields(f[3]), " "))
			}
		}
		return slices.Contains(fields, wantMap) && slices.Contains(fields, " 0")
	})

	// The liveness probe fails: kubelet restarts "probed" again and again.
	ps = waitPods(2*time.Minute, "probed restarted twice", func(m map[string]klPod) bool {
		c := m[multi].ctr("probed")
		return c != nil && c.RestartCount >= 2
	})
	probed := ps[multi].ctr("probed")
	t.Logf("kubelet: probed restartCount=%d lastState=%+v", probed.RestartCount, probed.LastState.Terminated)
	if lt := probed.LastState.Terminated; lt == nil || lt.ExitCode != 3 {
		t.Errorf("kubelet's last state of probed: %+v, want terminated with exit code 3", lt)
	}
	if c := ps[multi].ctr("main"); c == nil || c.RestartCount != 0 {
		t.Errorf("main restarted: %+v", c)
	}
	// husk has the newest attempt and the exit of the one before it.
	atts := huskContainers(t, d, ps[multi].Metadata.UID)["probed"]
	if len(atts) < 2 {
		t.Fatalf("husk lists %d attempts of probed, want the new one and the previous", len(atts))
	}
	newest, prev := atts[len(atts)-1], atts[len(atts)-2]
	t.Logf("husk: probed attempt %d state %v; attempt %d state %v exit %d reason %q", newest.Metadata.Attempt, newest.State,
		prev.Metadata.Attempt, prev.State, prev.ExitCode, prev.Reason)
	if newest.Metadata.Attempt < 1 || prev.Metadata.Attempt != newest.Metadata.Attempt-1 {
		t.Errorf("attempts %d and %d, want consecutive from >=1", prev.Metadata.Attempt, newest.Metadata.Attempt)
	}
	if prev.State != runtimeapi.ContainerState_CONTAINER_EXITED || prev.ExitCode != 3 || prev.FinishedAt == 0 {
		t.Errorf("previous attempt: state %v exit %d finished %d, want EXITED with 3", prev.State, prev.ExitCode, prev.FinishedAt)
	}
	if newest.StartedAt != 0 && newest.StartedAt < prev.FinishedAt {
		t.Errorf("newest attempt started %d before the previous finished %d", newest.StartedAt, prev.FinishedAt)
	}

	// The doomed pod's manifest goes: kubelet stops it and, at its next
	// garbage collection, removes its sandbox; husk leaves nothing of it.
	doomedUID := ps[doomed].Metadata.UID
	doomedSandboxes := huskSandboxes(t, d, doomedUID)
	if len(doomedSandboxes) != 1 {
		t.Fatalf("husk has %d sandboxes of doomed", len(doomedSandboxes))
	}
	if err := os.Remove(doomedManifest); err != nil {
		t.Fatal(err)
	}
	waitPods(time.Minute, "kubelet to forget doomed", func(m map[string]klPod) bool { _, ok := m[doomed]; return !ok })
	waitFor(t, 3*time.Minute, "kubelet to remove doomed's sandbox from husk", func() bool {
		alive()
		return len(huskSandboxes(t, d, doomedUID)) == 0
	})
	assertPodGone(t, d, doomedSandboxes[0])
	waitFor(t, time.Minute, "kubelet to remove doomed's pod cgroup", func() bool {
		return len(findCgroups(cgRoot, "pod"+doomedUID)) == 0
	})

	// kubelet goes; its pods stay until removed through husk. kubelet made
	// its root dir a shared bind mount of itself: that mount is kubelet's.
	stopKubelet()
	if err := unix.Unmount(filepath.Join(dir, "root"), 0); err != nil && err != unix.EINVAL {
		t.Errorf("unmount kubelet's root dir: %v", err)
	}
	rt := ctxT(t, 2*time.Minute)
	left, err := d.RT.ListPodSandbox(rt, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(left.Items) != 2 {
		t.Errorf("husk has %d sandboxes after kubelet stopped, want multi's and mapped's", len(left.Items))
	}
	for _, p := range left.Items {
		if _, err := d.RT.StopPodSandbox(rt, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			t.Fatalf("StopPodSandbox %s: %v", p.Id, err)
		}
		if _, err := d.RT.RemovePodSandbox(rt, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			t.Fatalf("RemovePodSandbox %s: %v", p.Id, err)
		}
		assertPodGone(t, d, p.Id)
	}
	assertDaemonClean(t, d)
	// Under cgroupRoot only kubelet's own (QoS and pod) cgroups may be left,
	// with nothing in them, and nothing of husk's below a pod cgroup.
	for _, root := range cgroupMountpoints(t) {
		_ = filepath.Walk(filepath.Join(root, cgRoot), func(p string, info os.FileInfo, err error) error {
			if err != nil {
				return nil
			}
			if info.IsDir() && strings.HasPrefix(filepath.Base(filepath.Dir(p)), "pod") {
				t.Errorf("cgroup left below a pod cgroup: %s", p)
			}
			if info.Name() == "cgroup.procs" {
				if b, _ := os.ReadFile(p); len(strings.TrimSpace(string(b))) > 0 {
					t.Errorf("processes left in %s: %s", p, strings.Fields(string(b)))
				}
			}
			return nil
		})
	}
	testenv.RemoveCgroupTree(cgRoot)
	if dirs := testenv.CgroupDirs(cgRoot); len(dirs) > 0 {
		t.Errorf("cgroupRoot could not be removed: %v", dirs)
	}
	if ms := testenv.MountsUnder(dir); len(ms) > 0 {
		t.Errorf("mounts left under kubelet's dir: %v", ms)
	}
}

type klCtrStatus struct {
	Name         string `json:"name"`
	RestartCount int    `json:"restartCount"`
	ContainerID  string `json:"containerID"`
	State        struct {
		Running    *struct{} `json:"running"`
		Terminated *klTerm   `json:"terminated"`
	} `json:"state"`
	LastState struct {
		Terminated *klTerm `json:"terminated"`
	} `json:"lastState"`
}

type klTerm struct {
	ExitCode    int    `json:"exitCode"`
	Reason      string `json:"reason"`
	ContainerID string `json:"containerID"`
}

type klPod struct {
	Metadata struct {
		Name, Namespace, UID string
	} `json:"metadata"`
	Status struct {
		Phase                 string        `json:"phase"`
		InitContainerStatuses []klCtrStatus `json:"initContainerStatuses"`
		ContainerStatuses     []klCtrStatus `json:"containerStatuses"`
	} `json:"status"`
}

func (p klPod) ctr(name string) *klCtrStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == name {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}

func (p klPod) running(name string) bool {
	c := p.ctr(name)
	return c != nil && c.State.Running != nil
}

// huskContainers lists husk's containers of a kubelet pod by name, each
// name's attempts in order, with their ContainerStatus.
func huskContainers(t *testing.T, d *Daemon, podUID string) map[string][]*runtimeapi.ContainerStatus {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	resp, err := d.RT.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		LabelSelector: map[string]string{"io.kubernetes.pod.uid": podUID},
	}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]*runtimeapi.ContainerStatus{}
	for _, c := range resp.Containers {
		st, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.Id})
		if err != nil {
			t.Fatalf("ContainerStatus %s: %v", c.Id, err)
		}
		out[c.Metadata.Name] = append(out[c.Metadata.Name], st.Status)
	}
	for _, s := range out {
		sort.Slice(s, func(i, j int) bool { return s[i].Metadata.Attempt < s[j].Metadata.Attempt })
	}
	return out
}

func huskSandboxes(t *testing.T, d *Daemon, podUID string) []string {
	t.Helper()
	resp, err := d.RT.ListPodSandbox(ctxT(t, 30*time.Second), &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{"io.kubernetes.pod.uid": podUID},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range resp.Items {
		ids = append(ids, p.Id)
	}
	return ids
}

func cgroupMountpoints(t *testing.T) []string {
	t.Helper()
	ms, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Mountpoint)
	}
	return out
}

// findCgroups lists cgroup dirs named name anywhere below root, in any
// hierarchy.
func findCgroups(root, name string) []string {
	var out []string
	for _, dir := range testenv.CgroupDirs(root) {
		_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
			if err == nil && info.IsDir() && info.Name() == name {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// dialInNetns dials from inside the network namespace of pid: a socket
// belongs to the namespace it was created in.
func dialInNetns(pid int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			orig, err := os.Open("/proc/thread-self/ns/net")
			if err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, err}
				return
			}
			defer orig.Close()
			target, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/net")
			if err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, err}
				return
			}
			defer target.Close()
			if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, err}
				return
			}
			var dl net.Dialer
			c, err := dl.DialContext(ctx, network, addr)
			if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
				// Back in the test's namespace: the thread may be reused.
				// Otherwise it stays locked and dies with this goroutine.
				runtime.UnlockOSThread()
			}
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}

// standaloneKubelet is the KubeletConfiguration of a kubelet without an API
// server, running static pods, as TestKubelet and TestSystemdNode run it.
type standaloneKubelet struct {
	Port, ReadOnlyPort, HealthzPort int
	StaticPodPath, CgroupDriver     string
	Endpoint                        string // the CRI endpoint, unix://...
	// CgroupRoot, PodLogsDir, VolumePluginDir: kubelet's defaults when "".
	CgroupRoot, PodLogsDir, VolumePluginDir string
	StatsFromCRI                            bool // PodAndContainerStatsFromCRI
}

func (k standaloneKubelet) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: %d
readOnlyPort: %d
healthzBindAddress: 127.0.0.1
healthzPort: %d
staticPodPath: %q
fileCheckFrequency: 1s
syncFrequency: 5s
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
cgroupDriver: %s
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: %q
imageServiceEndpoint: %q
runtimeRequestTimeout: 2m
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
localStorageCapacityIsolation: false
registerNode: false
`, k.Port, k.ReadOnlyPort, k.HealthzPort, k.StaticPodPath, k.CgroupDriver, k.Endpoint, k.Endpoint)
	for _, kv := range [][2]string{{"cgroupRoot", k.CgroupRoot}, {"podLogsDir", k.PodLogsDir}, {"volumePluginDir", k.VolumePluginDir}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, "%s: %q\n", kv[0], kv[1])
		}
	}
	if k.StatsFromCRI {
		b.WriteString("featureGates:\n  PodAndContainerStatsFromCRI: true\n")
	}
	return b.String()
}
