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
	p, err := os.StartProcess(rt.Path, rt.huskOCIArgv(call), &os.ProcAttr{
		Files: files,
		Env:   []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
	})
	outW.Close()
	errW.Close()
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", rt.Path, err)
	}
	pid := p.Pid
	// Release drops Go's pidfd; the reaper collects the status.
	_ = p.Release()
	exited := s.reaper.wait(pid)
	var stdout, stderr bytes.Buffer
	done := make(chan struct{})
	go func() { _, _ = io.Copy(&stderr, errR); close(done) }()
	_, _ = io.Copy(&stdout, outR)
	<-done
	ws := <-exited
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
