package integration

// containerd as the comparison runtime: the same CRI requests, the same
// registry, the same CNI plugins, so that tests and benchmarks can drive
// husk and containerd side by side. Each Containerd is isolated like a
// Daemon: its own root, state, socket, config, certs.d, CNI config, bridge,
// subnet and cgroup, and nothing of it is left after the test.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/husk-runtime/husk/integration/testenv"
	"github.com/husk-runtime/husk/pause"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerdBinary is Debian's containerd (package containerd, 1.6 on
// Debian 12); it finds containerd-shim-runc-v2 and runc in PATH.
var ContainerdBinary = "/usr/bin/containerd"

// containerdNamespace is the containerd namespace the CRI plugin uses.
const containerdNamespace = "k8s.io"

// Containerd is one isolated containerd with its CRI plugin.
type Containerd struct {
	t                        testing.TB
	Dir, Root, State, Socket string
	ConfigPath, CertsDir     string
	CNIDir, Bridge, Subnet   string
	// Cgroup is the cgroup (in every hierarchy) the daemon runs in; the
	// shims it starts inherit it, so the cgroup finds them all.
	Cgroup   string
	logPath  string
	cmd      *exec.Cmd
	done     chan struct{} // closed when cmd has exited
	waitErr  error
	conn     *grpc.ClientConn
	RT       runtimeapi.RuntimeServiceClient
	Img      runtimeapi.ImageServiceClient
	hadRunCD bool // /run/containerd existed before: never remove it then
}

// ContainerdOptions change an isolated containerd's configuration.
type ContainerdOptions struct {
	// LogLevel is containerd's log level ("info" unless set); at "debug" it
	// logs each layer it applies ("diff applied", with the time it took).
	LogLevel string
}

// Endpoint is the CRI endpoint, as the husk CLI's --endpoint takes it.
func (c *Containerd) Endpoint() string { return "unix://" + c.Socket }

// StartContainerd starts an isolated containerd. Its sandbox image and
// every registry host it might be asked for are served by the test
// registry (busyboxRef's), so it never reaches docker.io or
// registry.k8s.io. The test is skipped only when containerd is not
// installed.
func StartContainerd(t testing.TB) *Containerd { return StartContainerdWith(t, ContainerdOptions{}) }

// StartContainerdWith is StartContainerd with options.
func StartContainerdWith(t testing.TB, opts ContainerdOptions) *Containerd {
	t.Helper()
	requireRoot(t)
	if _, err := os.Stat(ContainerdBinary); err != nil {
		t.Skipf("containerd is not installed (apt-get install containerd, see the Makefile's deps): %v", err)
	}
	for _, b := range []string{"containerd-shim-runc-v2", "runc"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Fatalf("containerd is installed but %s is not in PATH: %v", b, err)
		}
	}
	busybox := busyboxRef(t)
	sandboxImage := pauseImageRef(t)
	registry := strings.SplitN(busybox, "/", 2)[0]

	b := make([]byte, 4)
	_, _ = rand.Read(b)
	suffix := hex.EncodeToString(b)
	// Short paths: socket paths must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "hctd-")
	if err != nil {
		t.Fatal(err)
	}
	n := subnetSeq.Add(1)
	c := &Containerd{
		t: t, Dir: dir, Root: filepath.Join(dir, "root"), State: filepath.Join(dir, "run"),
		Socket: filepath.Join(dir, "c.sock"), ConfigPath: filepath.Join(dir, "config.toml"),
		CertsDir: filepath.Join(dir, "certs.d"), CNIDir: filepath.Join(dir, "cni"),
		Bridge: "hctd" + suffix, Subnet: fmt.Sprintf("10.%d.%d.0/24", 200+os.Getpid()%50, n%250),
		Cgroup: "/husk-it-ctrd-" + suffix, logPath: filepath.Join(dir, "containerd.log"),
	}
	_, err = os.Stat("/run/containerd")
	c.hadRunCD = err == nil
	// Registered before anything can fail, so a half-started containerd is
	// cleaned up too.
	t.Cleanup(c.cleanup)

	for _, p := range []string{c.Root, c.State, c.CertsDir, c.CNIDir} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The registry's own address (containerd 1.6 would try HTTPS for it)
	// and the upstream hosts a default or a typo could name: all to the
	// local registry, with no fallback upstream.
	hosts := append([]string{registry}, testenv.CritestUpstreamHosts...)
	if err := testenv.WriteMirrorHosts(c.CertsDir, registry, hosts); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.CNIDir, "10-"+c.Bridge+".conflist"), c.cniConfig(), 0o644); err != nil {
		t.Fatal(err)
	}
	level := opts.LogLevel
	if level == "" {
		level = "info"
	}
	if err := os.WriteFile(c.ConfigPath, []byte(c.config(sandboxImage, level)), 0o644); err != nil {
		t.Fatal(err)
	}
	c.start()
	return c
}

// config renders containerd's configuration (version 2, containerd 1.6).
func (c *Containerd) config(sandboxImage, level string) string {
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
# The opt plugin would create /opt/containerd; nothing here uses it.
disabled_plugins = ["io.containerd.internal.v1.opt"]

[grpc]
  address = %[3]q

[debug]
  level = %[4]q

[cgroup]
  path = %[5]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[6]q
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # The host forbids lowering oom_score_adj below the daemon's own (as
  # husk detects and clamps): containerd must clamp too.
  restrict_oom_score_adj = true
  # Network namespaces under the state dir, not the host's /var/run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        # runc's state under this instance's state dir, not /run/containerd/runc.
        Root = %[7]q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[8]q
    conf_dir = %[9]q
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %[10]q
`, c.Root, c.State, c.Socket, level, c.Cgroup, sandboxImage, filepath.Join(c.State, "runc"),
		cniBinDir(c.Dir), c.CNIDir, c.CertsDir)
}

// cniBinDir returns the CNI plugin dir for containerd. containerd 1.6
// takes one bin_dir, husk two (/usr/lib/cni, where Debian installs them,
// and /opt/cni/bin): a dir under dir with links to the plugins of both,
// the first found winning as in husk, gives containerd the same plugins.
func cniBinDir(dir string) string {
	bin := filepath.Join(dir, "cni-bin")
	_ = os.MkdirAll(bin, 0o755)
	for _, src := range []string{"/usr/lib/cni", "/opt/cni/bin"} {
		ents, _ := os.ReadDir(src)
		for _, e := range ents {
			_ = os.Symlink(filepath.Join(src, e.Name()), filepath.Join(bin, e.Name())) // exists: an earlier dir wins
		}
	}
	return bin
}

// cniConfig is the same network husk's harness gets (network/defaultnet.go:
// bridge, host-local, portmap) on this instance's bridge and subnet.
// containerd adds loopback itself.
func (c *Containerd) cniConfig() []byte {
	type obj = map[string]any
	b, _ := json.MarshalIndent(obj{
		"cniVersion": "1.0.0",
		"name":       c.Bridge,
		"plugins": []any{
			obj{
				"type": "bridge", "bridge": c.Bridge, "isGateway": true, "ipMasq": true, "hairpinMode": true,
				"ipam": obj{
					"type":    "host-local",
					"ranges":  []any{[]any{obj{"subnet": c.Subnet}}},
					"routes":  []any{obj{"dst": "0.0.0.0/0"}},
					"dataDir": filepath.Join(c.Dir, "ipam"),
				},
			},
			obj{"type": "portmap", "capabilities": obj{"portMappings": true}},
		},
	}, "", "  ")
	return b
}

func (c *Containerd) start() {
	t := c.t
	t.Helper()
	logf, err := os.OpenFile(c.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	c.cmd = exec.Command(ContainerdBinary, "--config", c.ConfigPath)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	// Its own process group, so a Ctrl-C of `go test` reaches the test's
	// cleanup rather than containerd first.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		c.cmd = nil
		t.Fatalf("start containerd: %v", err)
	}
	c.done = make(chan struct{})
	go func() { c.waitErr = c.cmd.Wait(); close(c.done) }()
	conn, err := grpc.NewClient(c.Endpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c.conn = conn
	c.RT = runtimeapi.NewRuntimeServiceClient(conn)
	c.Img = runtimeapi.NewImageServiceClient(conn)
	// Serving means the CRI plugin loaded (a bad config leaves the socket
	// up with the CRI unimplemented) and its CNI config is loaded (until
	// then RunPodSandbox fails).
	deadline := time.Now().Add(60 * time.Second)
	var lastErr error
	for {
		select {
		case <-c.done:
			t.Fatalf("containerd exited: %v; log:\n%s", c.waitErr, tail(c.Log(), 60))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := c.RT.Status(ctx, &runtimeapi.StatusRequest{})
		cancel()
		lastErr = err
		if err == nil {
			lastErr = errors.New("NetworkReady is false")
			for _, cond := range st.GetStatus().GetConditions() {
				if cond.Type == runtimeapi.NetworkReady && cond.Status {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd CRI not ready on %s within 60s: %v; log:\n%s", c.Socket, lastErr, tail(c.Log(), 60))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop stops containerd: SIGTERM, then SIGKILL after 10 s.
func (c *Containerd) stop() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	c.cmd = nil
}

func (c *Containerd) running() bool {
	if c.cmd == nil || c.RT == nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.RT.Version(ctx, &runtimeapi.VersionRequest{})
	return err == nil
}

// cleanup removes every pod through the CRI (CNI DEL, mounts, shims),
// stops containerd, then undoes by force whatever that left: shims of this
// instance, container processes and cgroups, mounts, shim sockets, the
// bridge and the temp dir.
func (c *Containerd) cleanup() {
	t := c.t
	if c.running() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if resp, err := c.RT.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
			for _, p := range resp.Items {
				if _, err := c.RT.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
					t.Errorf("containerd cleanup: stop pod %s: %v", p.Id, err)
				}
				if _, err := c.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
					t.Errorf("containerd cleanup: remove pod %s: %v", p.Id, err)
				}
			}
		} else {
			t.Errorf("containerd cleanup: list pods: %v", err)
		}
		cancel()
	}
	c.stop()
	// What containerd knew of, from its state dir: the tasks (one dir per
	// container, the sandbox's included) and their shims' sockets.
	tasks, _ := filepath.Glob(filepath.Join(c.State, "io.containerd.runtime.v2.task", containerdNamespace, "*"))
	var sockets []string
	for _, task := range tasks {
		if a, err := os.ReadFile(filepath.Join(task, "address")); err == nil {
			sockets = append(sockets, strings.TrimPrefix(strings.TrimSpace(string(a)), "unix://"))
		}
	}
	// Shims run in containerd's cgroup, which they inherit; one that left
	// it is still named by its -address (this instance's socket).
	for _, pid := range append(cgroupPids(c.Cgroup), containerdShimPids(c.Socket)...) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	// Containers outlive a killed shim: they are in cgroups named by their
	// ids (containerd's default path, /k8s.io/<id>, without a cgroup parent).
	for _, task := range tasks {
		cg := "/" + containerdNamespace + "/" + filepath.Base(task)
		for _, pid := range cgroupPids(cg) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if len(tasks) > 0 {
		time.Sleep(100 * time.Millisecond)
		for _, task := range tasks {
			removeCgroupTree("/" + containerdNamespace + "/" + filepath.Base(task))
		}
	}
	// runc makes the parent /k8s.io and leaves it; rmdir removes it only
	// where it is empty, so another containerd's containers keep theirs.
	for _, d := range cgroupDirs("/" + containerdNamespace) {
		_ = os.Remove(d)
	}
	unmountUnder(c.Dir)
	for _, s := range sockets {
		_ = os.Remove(s)
	}
	if !c.hadRunCD {
		// Where containerd 1.6 puts shim sockets whatever its state dir;
		// removed only when empty, so another containerd's are untouched.
		_ = os.Remove("/run/containerd/s")
		_ = os.Remove("/run/containerd")
	}
	_ = exec.Command("ip", "link", "del", c.Bridge).Run()
	removeCgroupTree(c.Cgroup)
	if t.Failed() {
		t.Logf("containerd log (%s):\n%s", c.logPath, tail(c.Log(), 200))
	}
	_ = os.RemoveAll(c.Dir)
}

// cgroupPids lists the processes of a cgroup and its children, in every
// hierarchy.
func cgroupPids(path string) []int {
	seen := map[int]bool{}
	var out []int
	for _, dir := range cgroupDirs(path) {
		_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
			if err != nil || info.Name() != "cgroup.procs" {
				return nil
			}
			data, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
					seen[pid] = true
					out = append(out, pid)
				}
			}
			return nil
		})
	}
	return out
}

// containerdShimPids finds containerd-shim-runc-v2 processes started by the
// containerd listening on socket (their -address argument).
func containerdShimPids(socket string) []int {
	return pidsOf("containerd-shim-runc-v2", func(cmdline string) bool { return strings.Contains(cmdline, "\x00"+socket+"\x00") })
}

// pauseImage is husk's built-in infra rootfs (the static pause program) as
// an image: containerd's sandbox_image, so both runtimes run the same infra
// process.
var pauseImage struct {
	once sync.Once
	ref  string
	err  error
}

// pauseImageRef pushes the pause image to the test registry (busyboxRef's)
// once and returns its reference there.
func pauseImageRef(t testing.TB) string {
	t.Helper()
	bb := busyboxRef(t)
	pauseImage.once.Do(func() {
		var img v1.Image
		if img, pauseImage.err = buildPauseImage(); pauseImage.err != nil {
			return
		}
		pauseImage.ref = strings.SplitN(bb, "/", 2)[0] + "/husk/pause:test"
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		pauseImage.err = testenv.Push(ctx, img, pauseImage.ref)
	})
	if pauseImage.err != nil {
		t.Fatalf("pause image in the test registry: %v", pauseImage.err)
	}
	return pauseImage.ref
}

// buildPauseImage wraps pause.Layer() as one image layer, run as
// 65535:65535 like registry.k8s.io/pause.
func buildPauseImage() (v1.Image, error) {
	data, err := pause.Layer()
	if err != nil {
		return nil, err
	}
	// The layer must be a valid tar for the runtimes' unpackers.
	if _, err := tar.NewReader(bytes.NewReader(data)).Next(); err != nil {
		return nil, fmt.Errorf("pause layer: %w", err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.DockerLayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("pause layer: %w", err)
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: testenv.Platform().Architecture,
		OS:           "linux",
		Created:      v1.Time{Time: testenv.Epoch},
		Config: v1.Config{
			Entrypoint: []string{"/pause"},
			User:       "65535:65535",
			WorkingDir: "/",
		},
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.DockerLayer,
		History: v1.History{Created: v1.Time{Time: testenv.Epoch}, CreatedBy: "husk: built-in pause"}})
}

// Log returns what containerd logged so far.
func (c *Containerd) Log() string {
	b, _ := os.ReadFile(c.logPath)
	return string(b)
}
