package shim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ociIO is the stdio handed to husk-oci for the process it creates: stdin as
// fd 0, the stdout and stderr write ends as fds 3 and 4, and for a terminal
// the console socket as fd 5 (husk-oci is then run with --console).
type ociIO struct {
	stdin, stdout, stderr *os.File
	console               *os.File
}

// runOCI runs one call of the pod's runtime and returns the pid it reports
// (create, run, exec). It starts the helper itself and collects it through
// the reaper: exec.Cmd.Wait would race the reaper's wait4(-1).
func (s *Server) runOCI(call ociCall, io_ ociIO) (int, error) {
	start := time.Now()
	defer func() {
		s.log.Debug("oci runtime", "cmd", call.cmd, "cli", s.cfg.Runtime.CLI, "took", time.Since(start))
	}()
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	defer devnull.Close()
	orNull := func(f *os.File) *os.File {
		if f == nil {
			return devnull
		}
		return f
	}
	if s.cfg.Runtime.CLI {
		return s.runCLI(call, []*os.File{orNull(io_.stdin), orNull(io_.stdout), orNull(io_.stderr)}, io_.console)
	}
	return s.runHuskOCI(call, []*os.File{orNull(io_.stdin), orNull(io_.stdout), orNull(io_.stderr)}, io_.console)
}

// ociEnv is husk-oci's whole environment.
var ociEnv = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}

// runHuskOCI runs husk-oci: the process's stdio on fds 0, 3 and 4 and the
// console socket on 5, its own result on stdout and error on stderr.
func (s *Server) runHuskOCI(call ociCall, stdio []*os.File, console *os.File) (int, error) {
	rt := s.cfg.Runtime
	outR, outW, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("pipe for husk-oci stdout: %w", err)
	}
	defer outR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		outW.Close()
		return 0, fmt.Errorf("pipe for husk-oci stderr: %w", err)
	}
	defer errR.Close()
	files := []*os.File{stdio[0], outW, errW, stdio[1], stdio[2]}
	if console != nil {
		files = append(files, console)
	}
	argv := rt.huskOCIArgv(call)
	var wait func() unix.WaitStatus
	if h := s.takeWarm(); h != nil {
		if err := h.callWarm(argv[1:], files); err != nil {
			s.log.Debug("warm husk-oci not taken; starting one", "error", err)
		} else {
			wait = h.wait
		}
	}
	s.log.Debug("husk-oci call", "cmd", call.cmd, "id", call.id, "warm", wait != nil)
	if wait == nil {
		p, err := os.StartProcess(rt.Path, argv, &os.ProcAttr{Files: files, Env: ociEnv})
		if err != nil {
			outW.Close()
			errW.Close()
			return 0, fmt.Errorf("start %s: %w", rt.Path, err)
		}
		// Release drops Go's pidfd (and sets p.Pid to -1); the reaper
		// collects the status.
		exited := s.reaper.wait(p.Pid)
		_ = p.Release()
		wait = func() unix.WaitStatus { return <-exited }
	}
	outW.Close()
	errW.Close()
	if call.cmd == "run" {
		// A pod's infra is run once, and its first container's create
		// follows: see warm.go.
		go s.warm()
	}
	var stdout, stderr bytes.Buffer
	done := make(chan struct{})
	go func() { _, _ = io.Copy(&stderr, errR); close(done) }()
	_, _ = io.Copy(&stdout, outR)
	<-done
	ws := wait()
	if code, _ := exitCode(ws); code != 0 {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = fmt.Sprintf("husk-oci %s exited with status %d", call.cmd, code)
		}
		return 0, fmt.Errorf("%s", msg)
	}
	var res struct {
		Pid int `json:"pid"`
	}
	if out := bytes.TrimSpace(stdout.Bytes()); len(out) > 0 {
		if err := json.Unmarshal(out, &res); err != nil {
			return 0, fmt.Errorf("husk-oci %s: bad result %q: %w", call.cmd, out, err)
		}
	}
	return res.Pid, nil
}

func killPid(pid, sig int) error {
	err := unix.Kill(pid, unix.Signal(sig))
	if err == unix.ESRCH {
		return nil
	}
	return err
}
