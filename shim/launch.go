package shim

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// LaunchConfig says how to start a pod's shim.
type LaunchConfig struct {
	ShimPath string
	Runtime  Runtime // what makes the pod's containers
	PodID    string
	Socket   string
	LogPath  string // the shim's own log
	Debug    bool   // log at debug level
	JSONLog  bool   // log JSON lines (log_format = "json")
}

// Launch starts husk-shim for a pod, detached in its own session so that
// neither a Ctrl-C at the daemon's terminal nor the daemon's death reaches
// it, and returns once the shim is listening.
func Launch(ctx context.Context, cfg LaunchConfig) (*Client, int, error) {
	logf, err := os.OpenFile(cfg.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("open shim log %s: %w", cfg.LogPath, err)
	}
	defer logf.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, 0, fmt.Errorf("shim ready pipe: %w", err)
	}
	defer readyR.Close()
	args := append([]string{"--id", cfg.PodID, "--socket", cfg.Socket}, cfg.Runtime.Flags()...)
	if cfg.Debug {
		args = append(args, "--debug")
	}
	if cfg.JSONLog {
		args = append(args, "--log-json")
	}
	cmd := exec.Command(cfg.ShimPath, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.ExtraFiles = []*os.File{readyW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// One P is plenty for a supervisor and saves a per-P cache and thread.
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "GOMAXPROCS=1"}
	if err := cmd.Start(); err != nil {
		readyW.Close()
		return nil, 0, fmt.Errorf("start shim %s: %w", cfg.ShimPath, err)
	}
	readyW.Close()
	pid := cmd.Process.Pid
	// The daemon reaps the shims it started; after a daemon restart they
	// belong to init, which does.
	go func() { _ = cmd.Wait() }()

	ready := make(chan error, 1)
	go func() {
		buf := make([]byte, 3)
		_, err := io.ReadFull(readyR, buf)
		ready <- err
	}()
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case err = <-ready:
	case <-t.C:
		err = fmt.Errorf("timed out")
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, 0, fmt.Errorf("shim for pod %s did not come up (see %s): %w", cfg.PodID, cfg.LogPath, err)
	}
	return &Client{Socket: cfg.Socket}, pid, nil
}
