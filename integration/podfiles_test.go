package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/husk-runtime/husk/integration/testenv"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func execOut(t *testing.T, d *Daemon, ctr string, cmd ...string) string {
	t.Helper()
	ex, err := d.RT.ExecSync(ctxT(t, time.Minute), &runtimeapi.ExecSyncRequest{ContainerId: ctr, Cmd: cmd, Timeout: 20})
	if err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	if ex.ExitCode != 0 {
		t.Fatalf("exec %v: exit %d, stderr %q", cmd, ex.ExitCode, ex.Stderr)
	}
	return string(ex.Stdout)
}

// TestPodFilesAndNamespaces checks what a pod's containers see: hostname,
// /etc/hosts with the pod IP, resolv.conf from the DNS config, a /dev/shm
// shared by the pod's containers only, kubelet's cgroup parent, and a
// host-network pod that shares the node's network and skips CNI.
func TestPodFilesAndNamespaces(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	pull(t, d, ref)
	ctx := ctxT(t, 2*time.Minute)

	parent := fmt.Sprintf("/husk-it-parent-%d", os.Getpid())
	t.Cleanup(func() { testenv.RemoveCgroupTree(parent) })
	pod := podConfig("files")
	pod.DnsConfig = &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"ns.svc.cluster.local"}, Options: []string{"ndots:5"}}
	pod.Linux.CgroupParent = parent
	podID := runPod(t, d, pod)
	ac := ctrConfig("a", ref, "sleep", "3600")
	ac.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER}}
	a := runContainer(t, d, podID, pod, ac)
	b := runContainer(t, d, podID, pod, ctrConfig("b", ref, "sleep", "3600"))

	if h := strings.TrimSpace(execOut(t, d, a, "hostname")); h != "files" {
		t.Errorf("hostname %q", h)
	}
	ps, err := d.RT.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: podID})
	if err != nil {
		t.Fatal(err)
	}
	if hosts := execOut(t, d, a, "cat", "/etc/hosts"); !strings.Contains(hosts, ps.Status.Network.Ip+"\tfiles") {
		t.Errorf("/etc/hosts lacks the pod IP %s:\n%s", ps.Status.Network.Ip, hosts)
	}
	resolv := execOut(t, d, a, "cat", "/etc/resolv.conf")
	for _, want := range []string{"nameserver 10.96.0.10", "search ns.svc.cluster.local", "options ndots:5"} {
		if !strings.Contains(resolv, want) {
			t.Errorf("resolv.conf lacks %q:\n%s", want, resolv)
		}
	}
	// One /dev/shm for the pod: B sees what A writes; the host does not.
	execOut(t, d, a, "sh", "-c", "echo shared > /dev/shm/x")
	if got := strings.TrimSpace(execOut(t, d, b, "cat", "/dev/shm/x")); got != "shared" {
		t.Errorf("B read %q from /dev/shm", got)
	}
	if _, err := os.Stat("/dev/shm/x"); err == nil {
		t.Error("the pod's /dev/shm is the host's")
	}
	if cg := execOut(t, d, a, "cat", "/proc/self/cgroup"); !strings.Contains(cg, parent+"/") {
		t.Errorf("container not under cgroup parent %s:\n%s", parent, cg)
	}
	// PID namespaces: A asked for its own (CONTAINER, what kubelet sends
	// by default); B sent no options, and the CRI's zero value is POD, so it
	// shares the pod's, where the infra process is PID 1.
	if pid1 := strings.TrimSpace(execOut(t, d, a, "cat", "/proc/1/comm")); pid1 != "sleep" {
		t.Errorf("PID 1 in A is %q, want its own process", pid1)
	}
	if pid1 := strings.TrimSpace(execOut(t, d, b, "cat", "/proc/1/comm")); pid1 != "pause" {
		t.Errorf("PID 1 in B is %q, want the pod's pause", pid1)
	}

	hpod := podConfig("hostnet")
	hpod.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}}
	hostID := runPod(t, d, hpod)
	hc := ctrConfig("h", ref, "sleep", "3600")
	hc.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}}
	h := runContainer(t, d, hostID, hpod, hc)
	node, _ := os.Hostname()
	if got := strings.TrimSpace(execOut(t, d, h, "hostname")); got != node {
		t.Errorf("host-network pod hostname %q, want the node's %q", got, node)
	}
	hostNet, _ := os.Readlink("/proc/self/ns/net")
	if got := strings.TrimSpace(execOut(t, d, h, "readlink", "/proc/self/ns/net")); got != hostNet {
		t.Errorf("host-network container netns %s, host %s", got, hostNet)
	}
	if _, err := os.Stat(filepath.Join(d.State, "netns", hostID)); !os.IsNotExist(err) {
		t.Errorf("host-network pod got a netns file (%v)", err)
	}
	hs, err := d.RT.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: hostID})
	if err != nil || hs.Status.GetNetwork().GetIp() != "" {
		t.Errorf("host-network pod status: %v, ip %q (CNI must not run)", err, hs.GetStatus().GetNetwork().GetIp())
	}

	for _, id := range []string{podID, hostID} {
		if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatal(err)
		}
		assertPodGone(t, d, id)
	}
	assertDaemonClean(t, d)
	if dirs := testenv.CgroupDirs(parent + "/" + podID); len(dirs) > 0 {
		t.Errorf("pod cgroups left under kubelet's parent: %v", dirs)
	}
}

// TestStatusWithoutNetwork checks the conditions kubelet gates on: with no
// CNI config the network is not ready and the reason says where husk
// looked; the runtime itself is ready and reports its cgroup driver.
func TestStatusWithoutNetwork(t *testing.T) {
	d := StartDaemonWith(t, DaemonOptions{NoDefaultNetwork: true})
	ctx := ctxT(t, time.Minute)
	st, err := d.RT.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	conds := map[string]*runtimeapi.RuntimeCondition{}
	for _, c := range st.Status.Conditions {
		conds[c.Type] = c
	}
	if c := conds[runtimeapi.RuntimeReady]; c == nil || !c.Status {
		t.Errorf("RuntimeReady: %v", c)
	}
	if c := conds[runtimeapi.NetworkReady]; c == nil || c.Status || !strings.Contains(c.Message, d.CNIDir) {
		t.Errorf("NetworkReady with no CNI config: %v (want false, naming %s)", c, d.CNIDir)
	}
	rc, err := d.RT.RuntimeConfig(ctx, &runtimeapi.RuntimeConfigRequest{})
	if err != nil || rc.Linux.CgroupDriver != runtimeapi.CgroupDriver_CGROUPFS {
		t.Errorf("RuntimeConfig: %v %v", err, rc)
	}
	if _, err := d.RT.UpdateRuntimeConfig(ctx, &runtimeapi.UpdateRuntimeConfigRequest{RuntimeConfig: &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: "not-a-cidr"}}}); err == nil {
		t.Error("UpdateRuntimeConfig accepted a bad pod CIDR")
	}
}
