package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestOneDaemonPerRoot starts second daemons beside a running one: on the
// same root (and socket) it exits at once naming the first one's pid; on
// another root but the same socket it refuses the socket. The first keeps
// serving, and a daemon killed with SIGKILL leaves no lock behind.
func TestOneDaemonPerRoot(t *testing.T) {
	d := StartDaemon(t)
	ctx := ctxT(t, time.Minute)
	second := func(cfgPath string) (string, error) {
		cmd := exec.Command(filepath.Join(binDir(t), "husk"), "daemon", "--config", cfgPath)
		done := make(chan struct{})
		var out []byte
		var err error
		go func() { out, err = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
			return string(out), err
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("a second daemon on %s still runs after 15s: %s", cfgPath, out)
			return "", nil
		}
	}

	out, err := second(d.ConfigPath)
	want := fmt.Sprintf("another husk daemon (pid %d) is running on %s", d.cmd.Process.Pid, d.Root)
	if err == nil || !strings.Contains(out, want) {
		t.Fatalf("second daemon on the same root: %v, output %q; want it to exit saying %q", err, out, want)
	}

	// Another root and state, the same socket.
	cfg, err := os.ReadFile(d.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	other := strings.NewReplacer(fmt.Sprintf("root = %q", d.Root), fmt.Sprintf("root = %q", filepath.Join(d.Dir, "root2")),
		fmt.Sprintf("state = %q", d.State), fmt.Sprintf("state = %q", filepath.Join(d.Dir, "run2"))).Replace(string(cfg))
	otherPath := filepath.Join(d.Dir, "config2.toml")
	if err := os.WriteFile(otherPath, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = second(otherPath)
	if err == nil || !strings.Contains(out, "socket "+d.Socket+" is served by another process") {
		t.Fatalf("second daemon on another root, same socket: %v, output %q", err, out)
	}

	if _, err := d.RT.Version(ctx, &runtimeapi.VersionRequest{}); err != nil {
		t.Fatalf("the first daemon stopped serving: %v", err)
	}
	// SIGKILL: the kernel drops the lock with the process; the next start
	// takes it.
	d.Kill()
	d.Start()
	if _, err := d.RT.Version(ctx, &runtimeapi.VersionRequest{}); err != nil {
		t.Fatalf("restart after SIGKILL: %v", err)
	}
}
