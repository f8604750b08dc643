package testenv

// containerd as the comparison runtime: the same CRI requests, the same
// registry, the same CNI plugins, so that tests, benchmarks and the suite
// runners can drive husk and containerd side by side. Each Containerd is
// isolated like a husk daemon of the tests: its own root, state, socket,
// config, certs.d, CNI config, bridge, subnet and cgroup, and Cleanup
// leaves nothing of it.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerdBinary is Debian's containerd (package containerd, 1.6 on
// Debian 12); it finds containerd-shim-runc-v2 and runc in PATH.
var ContainerdBinary = "/usr/bin/containerd"

// Containerd2Binaries are the files a newest-containerd dir holds (`make
// containerd2`, from tools/containerd: containerd v2.4.2, its runc shim,
// runc v1.5.3 with seccomp).
var Containerd2Binaries = []string{"containerd", "containerd-shim-runc-v2", "runc"}

// ContainerdNamespace is the containerd namespace the CRI plugin uses.
const ContainerdNamespace = "k8s.io"

// ErrNoContainerd says containerd is not installed: callers skip.
var ErrNoContainerd = errors.New("containerd is not installed (apt-get install containerd, see the Makefile's deps)")

// Containerd is one isolated containerd with its CRI plugin.
type Containerd struct {
	Dir, Root, State, Socket string
	ConfigPath, CertsDir     string
	CNIDir, Bridge, Subnet   string
	// Cgroup is the cgroup (in every hierarchy) the daemon runs in; the
	// shims it starts inherit it, so the cgroup finds them all.
	Cgroup   string
	LogPath  string
	RT       runtimeapi.RuntimeServiceClient
	Img      runtimeapi.ImageServiceClient
	cmd      *exec.Cmd
	done     chan struct{} // closed when cmd has exited
	waitErr  error
	conn     *grpc.ClientConn
	hadRunCD bool // /run/containerd existed before: never remove it then
	binary   string
	binDir   string // containerd 2's dir; "" for Debian's containerd 1.6
}

// ContainerdOptions configure an isolated containerd.
type ContainerdOptions struct {
	// SandboxImage is the infra image (a reference the mirrors serve).
	SandboxImage string
	// Registry is the local registry's address; it and every host of
	// MirrorHosts are served by it, with no fallback upstream.
	Registry    string
	MirrorHosts []string
	// Subnet is the pod network's /24 (on a bridge of its own).
	Subnet string
	// Handlers are runc runtime handlers beside the default "runc" (the
	// node e2e suite's RuntimeClass specs name test-handler).
	Handlers []string
	// LogLevel is containerd's log level ("info" unless set); at "debug" it
	// logs each layer it applies ("diff applied", with the time it took).
	LogLevel string
	// NoMasquerade leaves ipMasq off in the pod network (see
	// BridgeConflist).
	NoMasquerade bool
	// BinDir, when set, holds containerd 2 (Containerd2Binaries), which is
	// run instead of Debian's 1.6, with its shim and runc from the same dir
	// and a version 3 config.
	BinDir string
}

// Endpoint is the CRI endpoint, as kubelet and the husk CLI take it.
func (c *Containerd) Endpoint() string { return "unix://" + c.Socket }

// Pid is the daemon's process id.
func (c *Containerd) Pid() int { return c.cmd.Process.Pid }

// StartContainerd starts an isolated containerd and returns once its CRI
// serves with the network ready. On error nothing of it is left.
func StartContainerd(opts ContainerdOptions) (*Containerd, error) {
	binary := ContainerdBinary
	if opts.BinDir != "" {
		for _, b := range Containerd2Binaries {
			if _, err := os.Stat(filepath.Join(opts.BinDir, b)); err != nil {
				return nil, fmt.Errorf("%w: containerd 2 is not built (make containerd2): %v", ErrNoContainerd, err)
			}
		}
		binary = filepath.Join(opts.BinDir, "containerd")
	} else {
		if _, err := os.Stat(ContainerdBinary); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNoContainerd, err)
		}
		for _, b := range []string{"containerd-shim-runc-v2", "runc"} {
			if _, err := exec.LookPath(b); err != nil {
				return nil, fmt.Errorf("containerd is installed but %s is not in PATH: %w", b, err)
			}
		}
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	suffix := hex.EncodeToString(b)
	// Short paths: socket paths must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "hctd-")
	if err != nil {
		return nil, err
	}
	c := &Containerd{
		Dir: dir, Root: filepath.Join(dir, "root"), State: filepath.Join(dir, "run"),
		Socket: filepath.Join(dir, "c.sock"), ConfigPath: filepath.Join(dir, "config.toml"),
		CertsDir: filepath.Join(dir, "certs.d"), CNIDir: filepath.Join(dir, "cni"),
		Bridge: "hctd" + suffix, Subnet: opts.Subnet,
		Cgroup: "/husk-it-ctrd-" + suffix, LogPath: filepath.Join(dir, "containerd.log"),
		binary: binary, binDir: opts.BinDir,
	}
	_, err = os.Stat("/run/containerd")
	c.hadRunCD = err == nil
	if err := c.setUp(opts); err != nil {
		c.Cleanup()
		return nil, err
	}
	return c, nil
}

func (c *Containerd) setUp(opts ContainerdOptions) error {
	for _, p := range []string{c.Root, c.State, c.CertsDir, c.CNIDir} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
	}
	// The registry's own address (containerd 1.6 would try HTTPS for it)
	// and the upstream hosts: all to the local registry.
	if err := WriteMirrorHosts(c.CertsDir, opts.Registry, append([]string{opts.Registry}, opts.MirrorHosts...)); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.CNIDir, "10-"+c.Bridge+".conflist"), c.cniConfig(!opts.NoMasquerade), 0o644); err != nil {
		return err
	}
	level := opts.LogLevel
	if level == "" {
		level = "info"
	}
	config := c.config(opts.SandboxImage, level, opts.Handlers)
	if c.binDir != "" {
		config = c.configV3(opts.SandboxImage, level, opts.Handlers)
	}
	if err := os.WriteFile(c.ConfigPath, []byte(config), 0o644); err != nil {
		return err
	}
	return c.start()
}

// configHead is how both config versions start: this instance's paths,
// socket, log level and cgroup.
func (c *Containerd) configHead(version int, level string) string {
	return fmt.Sprintf(`version = %d
root = %q
state = %q
# The opt plugin would create /opt/containerd; nothing here uses it.
disabled_plugins = ["io.containerd.internal.v1.opt"]

[grpc]
  address = %q

[debug]
  level = %q

[cgroup]
  path = %q

`, version, c.Root, c.State, c.Socket, level, c.Cgroup)
}

// config renders containerd's configuration (version 2, containerd 1.6).
func (c *Containerd) config(sandboxImage, level string, handlers []string) string {
	var runtimes strings.Builder
	for _, h := range append([]string{"runc"}, handlers...) {
		fmt.Fprintf(&runtimes, `    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.%[1]s]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.%[1]s.options]
        SystemdCgroup = false
        # runc's state under this instance's state dir, not /run/containerd/runc.
        Root = %[2]q
`, h, filepath.Join(c.State, "runc"))
	}
	return c.configHead(2, level) + fmt.Sprintf(`[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[1]q
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
%[2]s  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[3]q
    conf_dir = %[4]q
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %[5]q
`, sandboxImage, runtimes.String(),
		cniBinDir(c.Dir), c.CNIDir, c.CertsDir)
}

// configV3 renders containerd 2's configuration (version 3: the CRI
// plugin split into images, runtime and the gRPC service). Beside what
// config sets for 1.6, two pull settings its documentation offers for
// speed, off by default upstream: multipart layer fetch
// (concurrent_layer_fetch_buffer, 8 MiB chunks, the size Bottlerocket
// ships) and parallel unpack (max_concurrent_unpacks 3, as many as the
// downloads), both in the transfer service that CRI pulls through.
func (c *Containerd) configV3(sandboxImage, level string, handlers []string) string {
	var runtimes strings.Builder
	for _, h := range append([]string{"runc"}, handlers...) {
		fmt.Fprintf(&runtimes, `    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.%[1]s]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.%[1]s.options]
        SystemdCgroup = false
        BinaryName = %[2]q
        Root = %[3]q
`, h, filepath.Join(c.binDir, "runc"), filepath.Join(c.State, "runc"))
	}
	return c.configHead(3, level) + fmt.Sprintf(`[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %[1]q
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = %[5]q

[plugins.'io.containerd.transfer.v1.local']
  max_concurrent_downloads = 3
  concurrent_layer_fetch_buffer = 8388608
  max_concurrent_unpacks = 3
  config_path = %[5]q

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
%[2]s  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [%[3]q]
    conf_dir = %[4]q
    max_conf_num = 1

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = '127.0.0.1'
  stream_server_port = '0'

# NRI on, as by default, on this instance's own socket: the default one is
# the node's, which NRI's listener takes over by removing the file.
[plugins.'io.containerd.nri.v1.nri']
  disable = false
  socket_path = %[6]q
  plugin_path = %[7]q
  plugin_config_path = %[7]q
`, sandboxImage, runtimes.String(),
		cniBinDir(c.Dir), c.CNIDir, c.CertsDir, filepath.Join(c.Dir, "nri.sock"), filepath.Join(c.Dir, "nri-plugins"))
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
func (c *Containerd) cniConfig(masquerade bool) []byte {
	return BridgeConflist(c.Bridge, c.Subnet, filepath.Join(c.Dir, "ipam"), masquerade)
}

// BridgeConflist is husk's default network (network/defaultnet.go: bridge,
// host-local, portmap) as a conflist named for its bridge, for runtimes
// given the same network by file. Without masquerade, bridge adds no nat
// rules per pod: pods still reach each other and the node, not beyond it.
// That is for the density benchmarks: every rule is an iptables-nft run
// that reads the whole nat table, and at 230 pods on each of three
// runtimes (about 2,800 rules) each CNI ADD took 4 to 5 s, hiding what
// the runtimes themselves cost.
func BridgeConflist(bridge, subnet, ipamDir string, masquerade bool) []byte {
	type obj = map[string]any
	b, _ := json.MarshalIndent(obj{
		"cniVersion": "1.0.0",
		"name":       bridge,
		"plugins": []any{
			obj{
				"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": masquerade, "hairpinMode": true,
				"ipam": obj{
					"type":    "host-local",
					"ranges":  []any{[]any{obj{"subnet": subnet}}},
					"routes":  []any{obj{"dst": "0.0.0.0/0"}},
					"dataDir": ipamDir,
				},
			},
			obj{"type": "portmap", "capabilities": obj{"portMappings": true}},
		},
	}, "", "  ")
	return b
}

// Start starts containerd (again, after Stop) on its configuration and
// waits until its CRI serves.
func (c *Containerd) Start() error { return c.start() }

func (c *Containerd) start() error {
	logf, err := os.OpenFile(c.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	c.cmd = exec.Command(c.binary, "--config", c.ConfigPath)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if c.binDir != "" {
		// Its own shim first in PATH (containerd looks the shim up there,
		// then beside itself); the shim is told runc's path by the config.
		c.cmd.Env = append(os.Environ(), "PATH="+c.binDir+":"+os.Getenv("PATH"))
	}
	// Its own process group, so a Ctrl-C of `go test` reaches the test's
	// cleanup rather than containerd first.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		c.cmd = nil
		return fmt.Errorf("start containerd: %w", err)
	}
	c.done = make(chan struct{})
	go func() { c.waitErr = c.cmd.Wait(); close(c.done) }()
	cc, err := criclient.Dial(c.Endpoint(), 0)
	if err != nil {
		return err
	}
	c.conn, c.RT, c.Img = cc.Conn, cc.Runtime, cc.Images
	// Serving means the CRI plugin loaded (a bad config leaves the socket
	// up with the CRI unimplemented) and its CNI config is loaded (until
	// then RunPodSandbox fails).
	deadline := time.Now().Add(60 * time.Second)
	var lastErr error
	for {
		select {
		case <-c.done:
			return fmt.Errorf("containerd exited: %v; log:\n%s", c.waitErr, Tail(c.Log(), 60))
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
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd CRI not ready on %s within 60s: %v; log:\n%s", c.Socket, lastErr, Tail(c.Log(), 60))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops containerd: SIGTERM, then SIGKILL after 10 s. Its containers
// and shims keep running.
func (c *Containerd) Stop() {
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

// Running says whether containerd is up and answering.
func (c *Containerd) Running() bool {
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

// Cleanup removes every pod through the CRI (CNI DEL, mounts, shims),
// stops containerd, then undoes by force whatever that left: shims of this
// instance, container processes and cgroups, mounts, shim sockets, the
// bridge and the temp dir. It returns what failed through the CRI.
func (c *Containerd) Cleanup() []error {
	var errs []error
	if c.Running() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if resp, err := c.RT.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
			for _, p := range resp.Items {
				if _, err := c.RT.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
					errs = append(errs, fmt.Errorf("containerd cleanup: stop pod %s: %w", p.Id, err))
				}
				if _, err := c.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
					errs = append(errs, fmt.Errorf("containerd cleanup: remove pod %s: %w", p.Id, err))
				}
			}
		} else {
			errs = append(errs, fmt.Errorf("containerd cleanup: list pods: %w", err))
		}
		cancel()
	}
	c.Stop()
	// What containerd knew of, from its state dir: the tasks (one dir per
	// container, the sandbox's included) and their shims' sockets.
	tasks, _ := filepath.Glob(filepath.Join(c.State, "io.containerd.runtime.v2.task", ContainerdNamespace, "*"))
	var sockets []string
	for _, task := range tasks {
		if a, err := os.ReadFile(filepath.Join(task, "address")); err == nil {
			sockets = append(sockets, strings.TrimPrefix(strings.TrimSpace(string(a)), "unix://"))
		}
	}
	// Shims run in containerd's cgroup, which they inherit; one that left
	// it is still named by its -address (this instance's socket).
	for _, pid := range append(CgroupPids(c.Cgroup), c.shimPids()...) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	// Containers outlive a killed shim: they are in cgroups named by their
	// ids (containerd's default path, /k8s.io/<id>, without a cgroup parent).
	for _, task := range tasks {
		cg := "/" + ContainerdNamespace + "/" + filepath.Base(task)
		for _, pid := range CgroupPids(cg) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if len(tasks) > 0 {
		time.Sleep(100 * time.Millisecond)
		for _, task := range tasks {
			RemoveCgroupTree("/" + ContainerdNamespace + "/" + filepath.Base(task))
		}
	}
	// runc makes the parent /k8s.io and leaves it; rmdir removes it only
	// where it is empty, so another containerd's containers keep theirs.
	for _, d := range CgroupDirs("/" + ContainerdNamespace) {
		_ = os.Remove(d)
	}
	UnmountUnder(c.Dir)
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
	RemoveCgroupTree(c.Cgroup)
	_ = os.RemoveAll(c.Dir)
	return errs
}

// shimPids finds containerd-shim-runc-v2 processes started by this
// containerd (their -address argument names its socket).
func (c *Containerd) shimPids() []int {
	return PidsOf("containerd-shim-runc-v2", func(cmdline string) bool { return strings.Contains(cmdline, "\x00"+c.Socket+"\x00") })
}

// Log returns what containerd logged so far.
func (c *Containerd) Log() string {
	b, _ := os.ReadFile(c.LogPath)
	return string(b)
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
