package shim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/husk-runtime/husk/atomicfile"
	"golang.org/x/sys/unix"
)

// maxExecOutput caps what one ExecSync keeps of each stream, as kubelet
// caps probe output: a runaway command must not balloon the shim.
const maxExecOutput = 16 << 20

// exec runs a process in a running container and waits for it. Past the
// timeout the process is killed and the result says so, so the daemon can
// answer DeadlineExceeded (kubelet's exec probes read that as a timeout).
func (s *Server) exec(ctx context.Context, req *Request) (*Response, error) {
	c, err := s.getIn(req.ID, StatusRunning)
	if err != nil {
		return nil, err
	}
	if req.Process == nil || len(req.Process.Args) == 0 {
		return nil, errorf(CodeBadRequest, "exec in %s: no command", c.id)
	}
	dir, err := s.scratch(".exec-")
	if err != nil {
		return nil, fmt.Errorf("exec in %s: %w", c.id, err)
	}
	defer os.RemoveAll(dir)
	procFile := filepath.Join(dir, "process.json")
	if err := atomicfile.WriteJSON(procFile, req.Process); err != nil {
		return nil, fmt.Errorf("exec in %s: %w", c.id, err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("exec in %s: stdout pipe: %w", c.id, err)
	}
	defer outR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		outW.Close()
		return nil, fmt.Errorf("exec in %s: stderr pipe: %w", c.id, err)
	}
	defer errR.Close()
	var stdout, stderr bytes.Buffer
	copied := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(&stdout, io.LimitReader(outR, maxExecOutput)); copied <- struct{}{} }()
	go func() { _, _ = io.Copy(&stderr, io.LimitReader(errR, maxExecOutput)); copied <- struct{}{} }()

	start := time.Now()
	pid, err := s.runOCI(ociCall{cmd: "exec", id: c.id, process: procFile}, ociIO{stdout: outW, stderr: errW})
	outW.Close()
	errW.Close()
	if err != nil {
		return nil, s.stoppedUnder(c, "exec", err)
	}
	exited := s.reaper.wait(pid)

	var timeout <-chan time.Time
	if req.Timeout > 0 {
		t := time.NewTimer(req.Timeout - time.Since(start))
		defer t.Stop()
		timeout = t.C
	}
	res := &ExecResult{}
	var ws unix.WaitStatus
	select {
	case ws = <-exited:
	case <-timeout:
		res.TimedOut = true
		_ = killPid(pid, int(unix.SIGKILL))
		ws = <-exited
	case <-ctx.Done():
		_ = killPid(pid, int(unix.SIGKILL))
		<-exited
		return nil, ctx.Err()
	}
	res.ExitCode, _ = exitCode(ws)
	// Children the command left in the background may hold the pipes; give
	// the output a moment, then return what arrived.
	deadline := time.After(100 * time.Millisecond)
	for n := 0; n < 2; {
		select {
		case <-copied:
			n++
		case <-deadline:
			outR.Close()
			errR.Close()
			deadline = nil
		}
	}
	res.Stdout, res.Stderr = stdout.Bytes(), stderr.Bytes()
	return &Response{ExecResult: res}, nil
}

// stoppedUnder names a call (exec, update) that failed because the
// container stopped under it: the runtime then fails deep inside
// ("namespace path: lstat /proc/<pid>/ns/ipc: no such file or directory",
// "set cgroup: container not running"), where the caller only needs to
// hear that the container is no longer running (a StopContainer or
// RemovePodSandbox won the race). An init that still runs failed the call
// for another reason (a missing binary), said at once; one that is a
// zombie or gone reaches the reaper within milliseconds, hence the short
// wait for its exit.
func (s *Server) stoppedUnder(c *container, what string, err error) error {
	s.mu.Lock()
	pid := c.pid
	s.mu.Unlock()
	if initRuns(pid) {
		return fmt.Errorf("%s in %s: %w", what, c.id, err)
	}
	select {
	case <-c.exited:
		return errorf(CodeBadRequest, "container %s exited while the %s ran (%v)", c.id, what, err)
	case <-time.After(200 * time.Millisecond):
		return fmt.Errorf("%s in %s: %w", what, c.id, err)
	}
}

// initRuns says whether pid is a live process: not gone, not a zombie
// (/proc/<pid>/stat's state field, after the parenthesised command name).
func initRuns(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}
