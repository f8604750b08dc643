package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"github.com/husk-runtime/husk/integration/testenv"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// systemdNode is a node of our own making run by a husk daemon: a Debian
// root with systemd as PID 1 in a privileged container (as kind runs its
// nodes), with this build's binaries at /opt/husk.
type systemdNode struct {
	d   *Daemon // the daemon that runs the node
	ctr string  // the node's container
	dir string  // host side of the node's bind mounts
}

// exec runs cmd in the node (sh -c) and returns its output; it fails the
// test unless it exits 0.
func (n *systemdNode) exec(t *testing.T, cmd string) string {
	t.Helper()
	out, code := n.try(t, cmd)
	if code != 0 {
		t.Fatalf("in the node: %s: exit %d: %s", cmd, code, out)
	}
	return out
}

func (n *systemdNode) try(t *testing.T, cmd string) (string, int32) {
	t.Helper()
	r, err := n.d.RT.ExecSync(ctxT(t, 2*time.Minute), &runtimeapi.ExecSyncRequest{ContainerId: n.ctr, Cmd: []string{"sh", "-c", cmd}, Timeout: 90})
	if err != nil {
		return err.Error(), -1
	}
	return string(r.Stdout) + string(r.Stderr), r.ExitCode
}

// startSystemdNode imports the node image into d and boots a node with
// files (node path -> content) in place, waiting for systemd to finish
// booting.
func startSystemdNode(t *testing.T, d *Daemon, files map[string]string) *systemdNode {
	t.Helper()
	archive, err := testenv.SystemdNodeArchive(testenv.DefaultCacheDir())
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(filepath.Join(binDir(t), "husk"), "--endpoint", "unix://"+d.Socket, "image", "import", archive).CombinedOutput(); err != nil {
		t.Fatalf("import the node image: %v: %s", err, out)
	}
	n := &systemdNode{d: d, dir: filepath.Join(d.Dir, "node")}
	bin, err := filepath.Abs(binDir(t))
	if err != nil {
		t.Fatal(err)
	}
	mounts := []*runtimeapi.Mount{{ContainerPath: "/opt/husk", HostPath: bin, Readonly: true}}
	// The node's state on the host's disk: overlayfs cannot take an
	// upper dir on the node's own overlay rootfs.
	for _, p := range []string{"/var/lib/husk", "/var/lib/kubelet", "/husk-api"} {
		host := filepath.Join(n.dir, strings.ReplaceAll(strings.TrimPrefix(p, "/"), "/", "-"))
		if err := os.MkdirAll(host, 0o755); err != nil {
			t.Fatal(err)
		}
		mounts = append(mounts, &runtimeapi.Mount{ContainerPath: p, HostPath: host})
	}
	for p, content := range files {
		host := filepath.Join(n.dir, "files", p)
		if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(host, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		mounts = append(mounts, &runtimeapi.Mount{ContainerPath: p, HostPath: host, Readonly: true})
	}
	pod := podConfig("systemd-node")
	pod.LogDirectory = filepath.Join(n.dir, "logs")
	pod.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{Privileged: true,
		NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}}
	podID := runPod(t, d, pod)
	cc := ctrConfig("node", testenv.SystemdNodeRef)
	cc.Command = nil // the image's node-init
	cc.Mounts = mounts
	cc.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{Privileged: true,
		NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER}}
	n.ctr = runContainer(t, d, podID, pod, cc)
	t.Cleanup(func() {
		if t.Failed() {
			console, _ := os.ReadFile(filepath.Join(pod.LogDirectory, cc.LogPath))
			t.Logf("the node's console:\n%s", tail(string(console), 60))
			out, _ := n.try(t, "systemctl --failed --no-pager; journalctl --no-pager -n 40 -u husk; journalctl --no-pager -n 400 -u kubelet | grep -v ' I1[0-9]' | tail -40")
			t.Logf("the node's journal:\n%s", out)
		}
		// The node's systemd stops its services (and so their pods)
		// with the node; the daemon's cleanup removes what is left.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID})
	})
	// systemctl answers once PID 1 serves its bus; --wait then waits for
	// the boot to end.
	var state string
	waitFor(t, 60*time.Second, "the node's systemd to boot", func() bool {
		out, _ := n.try(t, "systemctl is-system-running --wait")
		state = strings.TrimSpace(out)
		return state == "running" || state == "degraded"
	})
	if state == "degraded" {
		out, _ := n.try(t, "systemctl --failed --no-pager")
		t.Logf("the node's systemd is degraded:\n%s", out)
	}
	return n
}

// huskUnit is dist/systemd/husk.service with the node's binary path.
func huskUnit(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "dist", "systemd", "husk.service"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "/usr/local/bin/husk", "/opt/husk/husk")
}

// TestSystemdNode runs husk as a systemd service (dist/systemd/husk.service)
// with the systemd cgroup driver in a node whose PID 1 is systemd: its
// pods' containers are transient scopes in the slices named, RuntimeConfig
// says systemd, a restart of the service keeps the pods running, and
// removal leaves no scope behind.
func TestSystemdNode(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	cfg := `cgroup_driver = "systemd"
socket = "/husk-api/husk.sock"
shim_path = "/opt/husk/husk-shim"
oci_path = "/opt/husk/husk-oci"
log_level = "debug"
[cni]
default_network = false
`
	n := startSystemdNode(t, d, map[string]string{
		"/etc/husk/config.toml":               cfg,
		"/etc/systemd/system/husk.service":    huskUnit(t),
		"/etc/systemd/system/kubelet.service": kubeletUnit,
		"/etc/kubernetes/kubelet.yaml":        nodeKubeletConfig,
		"/etc/kubernetes/manifests/web.yaml":  fmt.Sprintf(staticPod, ref),
	})
	n.exec(t, "systemctl daemon-reload && systemctl start husk")
	sock := filepath.Join(n.dir, "husk-api", "husk.sock")
	waitFor(t, 30*time.Second, "the node's husk to serve", func() bool {
		_, err := os.Stat(sock)
		return err == nil
	})
	c, err := criclient.Dial(sock, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Conn.Close()
	ctx := ctxT(t, 3*time.Minute)
	waitFor(t, 30*time.Second, "the node's husk to answer", func() bool {
		_, err := c.Runtime.Version(ctx, &runtimeapi.VersionRequest{})
		return err == nil
	})
	rc, err := c.Runtime.RuntimeConfig(ctx, &runtimeapi.RuntimeConfigRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := rc.GetLinux().GetCgroupDriver(); got != runtimeapi.CgroupDriver_SYSTEMD {
		t.Errorf("RuntimeConfig cgroup driver: %v, want SYSTEMD", got)
	}
	if _, err := c.Images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		t.Fatal(err)
	}

	// A pod in a slice of its own naming, as kubelet's are.
	pod := podConfig("inner")
	pod.Linux.CgroupParent = "husktest-pod1.slice"
	pod.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}}
	rp, err := c.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	if err != nil {
		t.Fatalf("RunPodSandbox in the node: %v", err)
	}
	podID := rp.PodSandboxId
	cc := ctrConfig("sleeper", ref, "sleep", "3600")
	cc.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 40 << 20}
	cr, err := c.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cc, SandboxConfig: pod})
	if err != nil {
		t.Fatalf("CreateContainer in the node: %v", err)
	}
	ctr := cr.ContainerId
	if _, err := c.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: ctr}); err != nil {
		t.Fatalf("StartContainer in the node: %v", err)
	}
	for _, id := range []string{podID, ctr} {
		unit := "cri-husk-" + id + ".scope"
		if got := strings.TrimSpace(n.exec(t, "systemctl is-active "+unit)); got != "active" {
			t.Errorf("%s: %s", unit, got)
		}
		if got := strings.TrimSpace(n.exec(t, "systemctl show -P Slice "+unit)); got != "husktest-pod1.slice" {
			t.Errorf("%s is in slice %q, want husktest-pod1.slice", unit, got)
		}
	}
	scope := "/husktest.slice/husktest-pod1.slice/cri-husk-" + ctr + ".scope"
	if got := strings.TrimSpace(n.exec(t, "cat /sys/fs/cgroup/memory"+scope+"/memory.limit_in_bytes")); got != fmt.Sprint(40<<20) {
		t.Errorf("the container's memory limit in its scope: %s", got)
	}
	st, err := c.Runtime.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: ctr})
	if err != nil || st.GetStats().GetMemory().GetWorkingSetBytes().GetValue() == 0 {
		t.Errorf("ContainerStats of a container in a scope: %v, memory %v", err, st.GetStats().GetMemory())
	}

	// KillMode=process: the shims outlive the daemon's restart.
	n.exec(t, "systemctl restart husk")
	waitFor(t, 30*time.Second, "the node's husk to answer after its restart", func() bool {
		_, err := c.Runtime.Version(ctx, &runtimeapi.VersionRequest{})
		return err == nil
	})
	cs, err := c.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ctr})
	if err != nil || cs.GetStatus().GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("the container after `systemctl restart husk`: %v %v", err, cs.GetStatus().GetState())
	}

	if _, err := c.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{podID, ctr} {
		if out, _ := n.try(t, "systemctl is-active cri-husk-"+id+".scope"); strings.TrimSpace(out) == "active" {
			t.Errorf("scope of %s still active after RemovePodSandbox", id)
		}
	}
	if out, code := n.try(t, "ls -d /sys/fs/cgroup/memory/husktest.slice/husktest-pod1.slice/cri-husk-* 2>/dev/null"); code == 0 {
		t.Errorf("scope cgroups left after RemovePodSandbox: %s", out)
	}

	// kubelet on the node, with its systemd driver, runs a static pod on
	// husk: its containers are scopes in kubelet's kubepods slices.
	n.exec(t, "systemctl start kubelet")
	var web *runtimeapi.Container
	waitFor(t, 3*time.Minute, "kubelet's static pod to run on the node's husk", func() bool {
		r, err := c.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
			State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
			LabelSelector: map[string]string{"io.kubernetes.container.name": "web"}}})
		if err == nil && len(r.Containers) > 0 {
			web = r.Containers[0]
		}
		return web != nil
	})
	slice := strings.TrimSpace(n.exec(t, "systemctl show -P Slice cri-husk-"+web.Id+".scope"))
	if !strings.HasPrefix(slice, "kubepods-") || !strings.HasSuffix(slice, ".slice") {
		t.Errorf("kubelet's container is in slice %q, want one of kubelet's kubepods-*.slice", slice)
	}
	t.Logf("kubelet's static pod runs on husk under systemd: container %s in %s", web.Id[:12], slice)
	n.exec(t, "systemctl stop kubelet")
	pods, err := c.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if _, err := c.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			t.Fatal(err)
		}
	}
	if out, _ := n.try(t, "systemctl list-units --no-legend 'cri-husk-*'"); strings.TrimSpace(out) != "" {
		t.Errorf("scopes left after every pod was removed:\n%s", out)
	}
	n.exec(t, "systemctl stop husk")
}

// kubeletUnit runs this build's kubelet on the node, after husk.
const kubeletUnit = `[Unit]
Description=kubelet
After=husk.service
Requires=husk.service

[Service]
ExecStart=/opt/husk/kubelet --config=/etc/kubernetes/kubelet.yaml --v=2
Restart=always
RestartSec=2
`

// nodeKubeletConfig is a standalone kubelet with the systemd cgroup
// driver. The node shares the host's network: its ports are out of
// TestKubelet's way.
var nodeKubeletConfig = standaloneKubelet{Port: 10350, HealthzPort: 10348, StaticPodPath: "/etc/kubernetes/manifests",
	CgroupDriver: "systemd", Endpoint: "unix:///husk-api/husk.sock"}.yaml()

// staticPod is kubelet's pod on the node (%s: the image); host network, as
// the node's husk has no pod network.
const staticPod = `apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: husk-node
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: %s
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
`
