// Package integration runs the real husk binaries against the real kernel,
// real CNI plugins and a real registry on 127.0.0.1. Each test starts its
// own daemon with its own root, state, socket, CNI config, bridge and
// subnet, so tests never touch the system paths or each other.
package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"github.com/husk-runtime/husk/integration/testenv"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// binDir holds husk, husk-shim and husk-oci, built by `make build`.
func binDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("../bin")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"husk", "husk-shim", "husk-oci"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Fatalf("%s missing: run `make build` first (%v)", b, err)
		}
	}
	return dir
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("integration tests need root")
	}
}

// subnetSeq gives each daemon of this test binary its own /24, so parallel
// daemons never share a bridge or an address.
var subnetSeq atomic.Int32

// Daemon is one isolated husk daemon.
type Daemon struct {
	t                        testing.TB
	Dir, Root, State, Socket string
	CNIDir, CertsDir, Bridge string
	CDIDir                   string
	AuthFile                 string // registry.auth_file, absent until a test writes it: no daemon reads the host's
	Subnet                   string
	ConfigPath               string
	// NRISocket is the daemon's own NRI socket: a test daemon never
	// touches the node's /var/run/nri/nri.sock (NRI's listener removes
	// whatever file is there).
	NRISocket   string
	rootOnTmpfs bool // DaemonOptions.RootSizeMB
	cmd         *exec.Cmd
	logPath     string
	RT          runtimeapi.RuntimeServiceClient
	Img         runtimeapi.ImageServiceClient
	conn        *grpc.ClientConn
}

// DaemonOptions change an isolated daemon's configuration.
type DaemonOptions struct {
	NoDefaultNetwork      bool // leave the CNI config dir empty
	SeccompNativeArchOnly bool // seccomp_native_arch_only
	StallTimeoutSeconds   int  // registry.stall_timeout_seconds; 0 keeps the default
	// RootSizeMB puts the daemon's root on a tmpfs of that size (the
	// full-disk tests); cleanup unmounts it with the rest.
	RootSizeMB int
	// Subnet replaces the pod network's own /24 (a bench of 500 pods
	// needs more addresses).
	Subnet string
	// NoMasquerade gives the daemon, instead of its default network, the
	// same network by file without ipMasq (testenv.BridgeConflist).
	NoMasquerade bool
	// LogFormat is log_format ("" keeps the default, text).
	LogFormat string
	// MetricsAddress is metrics.address ("" keeps the endpoint off).
	MetricsAddress string
	// TracingEndpoint is tracing.endpoint, plaintext ("" keeps it off).
	TracingEndpoint string
	// NRIRequestTimeoutSeconds is nri.request_timeout_seconds (0 keeps
	// the default).
	NRIRequestTimeoutSeconds int
}

// StartDaemon starts a daemon in a fresh temp dir. Cleanup removes every
// pod it still has, stops it and checks nothing of it is left.
func StartDaemon(t testing.TB) *Daemon { return StartDaemonWith(t, DaemonOptions{}) }

// StartDaemonWith is StartDaemon with options.
func StartDaemonWith(t testing.TB, opts DaemonOptions) *Daemon {
	t.Helper()
	requireRoot(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	suffix := hex.EncodeToString(b)
	// Short paths: socket paths must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "husk-it-")
	if err != nil {
		t.Fatal(err)
	}
	// The mapped root of a pod with a user namespace walks down to its
	// rootfs from inside that namespace: the dirs above the root must
	// let others through (the daemon makes its own 0711).
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	n := subnetSeq.Add(1)
	d := &Daemon{
		t: t, Dir: dir, Root: filepath.Join(dir, "root"), State: filepath.Join(dir, "run"),
		Socket: filepath.Join(dir, "husk.sock"), CNIDir: filepath.Join(dir, "cni"), CertsDir: filepath.Join(dir, "certs.d"),
		CDIDir: filepath.Join(dir, "cdi"), AuthFile: filepath.Join(dir, "auth.json"),
		Bridge: "hkit" + suffix, Subnet: fmt.Sprintf("10.%d.%d.0/24", 200+os.Getpid()%50, n%250),
		ConfigPath: filepath.Join(dir, "config.toml"), logPath: filepath.Join(dir, "daemon.log"),
		NRISocket: filepath.Join(dir, "nri.sock"),
	}
	if opts.Subnet != "" {
		d.Subnet = opts.Subnet
	}
	for _, p := range []string{d.CNIDir, d.CertsDir, d.CDIDir} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if opts.NoMasquerade {
		opts.NoDefaultNetwork = true
		conf := testenv.BridgeConflist(d.Bridge, d.Subnet, filepath.Join(dir, "ipam"), false)
		if err := os.WriteFile(filepath.Join(d.CNIDir, "10-"+d.Bridge+".conflist"), conf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if opts.RootSizeMB > 0 {
		if err := os.MkdirAll(d.Root, 0o711); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", d.Root, "tmpfs", 0, fmt.Sprintf("size=%dm,mode=0711", opts.RootSizeMB)); err != nil {
			t.Fatalf("tmpfs root: %v", err)
		}
		d.rootOnTmpfs = true
		t.Cleanup(func() { _ = unix.Unmount(d.Root, unix.MNT_DETACH) })
	}
	cfg := fmt.Sprintf(`root = %q
state = %q
socket = %q
log_level = "debug"
cdi_spec_dirs = [%q]
seccomp_native_arch_only = %v
[cni]
conf_dir = %q
default_network = %v
bridge = %q
subnet = %q
[registry]
config_path = %q
auth_file = %q
`, d.Root, d.State, d.Socket, d.CDIDir, opts.SeccompNativeArchOnly, d.CNIDir, !opts.NoDefaultNetwork, d.Bridge, d.Subnet, d.CertsDir, d.AuthFile)
	if opts.StallTimeoutSeconds > 0 {
		cfg += fmt.Sprintf("stall_timeout_seconds = %d\n", opts.StallTimeoutSeconds)
	}
	if opts.LogFormat != "" {
		// A top-level key after [registry] would land in that table.
		cfg = fmt.Sprintf("log_format = %q\n", opts.LogFormat) + cfg
	}
	// Last: a table ends the [registry] keys above. husk-oci under another
	// name, as the node e2e suite's RuntimeClass specs want it; crun and
	// runc come from the defaults.
	cfg += "[runtimes.test-handler]\ntype = \"husk\"\n"
	if opts.MetricsAddress != "" {
		cfg += fmt.Sprintf("[metrics]\naddress = %q\n", opts.MetricsAddress)
	}
	if opts.TracingEndpoint != "" {
		cfg += fmt.Sprintf("[tracing]\nendpoint = %q\ninsecure = true\n", opts.TracingEndpoint)
	}
	cfg += testenv.NRIConfig(dir, d.NRISocket)
	if opts.NRIRequestTimeoutSeconds > 0 {
		cfg += fmt.Sprintf("request_timeout_seconds = %d\n", opts.NRIRequestTimeoutSeconds)
	}
	if err := os.WriteFile(d.ConfigPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Start()
	t.Cleanup(func() { d.cleanup() })
	return d
}

// Start (re)starts the daemon process on the same directories.
func (d *Daemon) Start() {
	t := d.t
	t.Helper()
	logf, err := os.OpenFile(d.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	d.cmd = exec.Command(filepath.Join(binDir(t), "husk"), "daemon", "--config", d.ConfigPath)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start husk daemon: %v", err)
	}
	c, err := criclient.Dial(d.Socket, 0)
	if err != nil {
		t.Fatal(err)
	}
	d.conn, d.RT, d.Img = c.Conn, c.Runtime, c.Images
	// A socket left by a killed daemon exists before the new one listens:
	// wait for an answer, not for the file.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := d.RT.Version(ctx, &runtimeapi.VersionRequest{})
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("husk daemon not serving on %s within 30s: %v; log:\n%s", d.Socket, err, d.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the daemon with SIGKILL, as a crash would.
func (d *Daemon) Kill() {
	d.signal(syscall.SIGKILL)
}

// Stop stops the daemon with SIGTERM, as an operator would.
func (d *Daemon) Stop() {
	d.signal(syscall.SIGTERM)
}

func (d *Daemon) signal(sig syscall.Signal) {
	if d.cmd == nil {
		return
	}
	if d.conn != nil {
		d.conn.Close()
		d.conn = nil
	}
	_ = d.cmd.Process.Signal(sig)
	_ = d.cmd.Wait()
	d.cmd = nil
}

// Log returns what the daemon logged so far.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(d.logPath)
	return string(b)
}

func (d *Daemon) cleanup() {
	t := d.t
	// A test that failed may have left the daemon dead or hung: start a
	// fresh one on the same dirs, so its recovery and RemovePodSandbox undo
	// everything (CNI DEL included), as they would on a real node.
	if d.cmd == nil || d.RT == nil || !d.serving() {
		d.Kill()
		func() {
			defer func() { _ = recover() }()
			d.Start()
		}()
	}
	if d.RT != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if resp, err := d.RT.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
			for _, p := range resp.Items {
				if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
					t.Errorf("cleanup: remove pod %s: %v", p.Id, err)
				}
			}
		} else {
			t.Errorf("cleanup: list pods: %v", err)
		}
		cancel()
	}
	d.Stop()
	// Last resort for what even that could not remove.
	killShims(d.State)
	testenv.UnmountUnder(d.Dir)
	removePodCgroups(d.Root)
	_ = exec.Command("ip", "link", "del", d.Bridge).Run()
	if t.Failed() {
		t.Logf("daemon log (%s):\n%s", d.logPath, tail(d.Log(), 200))
	}
	_ = os.RemoveAll(d.Dir)
}

func (d *Daemon) serving() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := d.RT.Version(ctx, &runtimeapi.VersionRequest{})
	return err == nil
}

func tail(s string, n int) string { return testenv.Tail(s, n) }

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
