package testenv

import (
	"context"
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

// Husk is a husk daemon that a suite runner (critest, the node e2e suite)
// starts on a dir of its own, outside `go test` (the integration tests'
// Daemon is the same for a testing.TB).
type Husk struct {
	Socket string
	Bridge string // its CNI bridge, deleted at Stop
	RT     runtimeapi.RuntimeServiceClient
	Img    runtimeapi.ImageServiceClient
	cmd    *exec.Cmd
	conn   *grpc.ClientConn
}

// StartHusk writes config (TOML naming socket and bridge) to
// dir/config.toml, starts bin/husk on it with its log in dir/daemon.log,
// and returns once it serves.
func StartHusk(binDir, dir, socket, bridge, config string) (*Husk, error) {
	h := &Husk{Socket: socket, Bridge: bridge}
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "daemon.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	h.cmd = exec.Command(filepath.Join(binDir, "husk"), "daemon", "--config", cfgPath)
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	if err := h.cmd.Start(); err != nil {
		return nil, err
	}
	c, err := criclient.Dial(socket, 0)
	if err != nil {
		h.Stop()
		return nil, err
	}
	h.conn, h.RT, h.Img = c.Conn, c.Runtime, c.Images
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := h.RT.Version(ctx, &runtimeapi.VersionRequest{})
		cancel()
		if err == nil {
			return h, nil
		}
		if time.Now().After(deadline) {
			h.Stop()
			return nil, fmt.Errorf("husk daemon not serving: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Pid is the daemon's process id.
func (h *Husk) Pid() int { return h.cmd.Process.Pid }

// RemovePods removes every pod the suite left (failing specs leave some).
func (h *Husk) RemovePods() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pods, err := h.RT.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cleanup: list pods:", err)
		return
	}
	for _, p := range pods.Items {
		if _, err := h.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			fmt.Fprintln(os.Stderr, "cleanup: remove pod", p.Id, err)
		}
	}
}

// Stop stops the daemon (SIGTERM; its pods' shims stay, so remove the pods
// first) and deletes its bridge.
func (h *Husk) Stop() {
	if h.cmd == nil {
		return
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	_ = h.cmd.Wait()
	h.cmd = nil
	if h.conn != nil {
		h.conn.Close()
	}
	_ = exec.Command("ip", "link", "del", h.Bridge).Run()
}

// GinkgoCounts reads ginkgo's closing "SUCCESS! -- N Passed | N Failed | N
// Pending | N Skipped" line.
func GinkgoCounts(summary string) (passed, failed, skipped int) {
	// An interrupted run says "FAIL! - Interrupted by User -- 24 Passed | ...".
	if i := strings.LastIndex(summary, "-- "); i >= 0 {
		summary = summary[i+len("-- "):]
	}
	for _, part := range strings.Split(summary, "|") {
		var n int
		var word string
		if _, err := fmt.Sscanf(strings.TrimSpace(part), "%d %s", &n, &word); err != nil {
			continue
		}
		switch word {
		case "Passed":
			passed = n
		case "Failed":
			failed = n
		case "Skipped":
			skipped = n
		}
	}
	return
}

// KeepLogs copies the named files of a run's temp dir to /tmp as
// prefix-<base name> before the dir is removed, and lists the copies.
func KeepLogs(dir, prefix string, names ...string) string {
	var kept []string
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		dst := filepath.Join(os.TempDir(), prefix+filepath.Base(name))
		if os.WriteFile(dst, data, 0o644) == nil {
			kept = append(kept, dst)
		}
	}
	return strings.Join(kept, ", ")
}

// NRIConfig is the [nri] table of a test daemon in dir: its own socket
// and no plugin dirs of the node's, so test daemons never take over the
// node's /var/run/nri/nri.sock (NRI's listener removes whatever file is
// there) nor start a plugin installed on it. It is a table: it goes last.
func NRIConfig(dir, socket string) string {
	return fmt.Sprintf("[nri]\nsocket_path = %q\nplugin_path = %q\nplugin_config_path = %q\n",
		socket, filepath.Join(dir, "nri-plugins"), filepath.Join(dir, "nri-conf.d"))
}
