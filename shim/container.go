package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/husk-runtime/husk/atomicfile"
	"golang.org/x/sys/unix"
)

// logDrain bounds how long an exit waits for the container's output to be
// logged: a process the container left behind may hold the pipe open.
const logDrain = 2 * time.Second

func (s *Server) create(ctx context.Context, req *Request) (*Response, error) {
	if req.ID == "" || req.Bundle == "" || req.ExitFile == "" {
		return nil, errorf(CodeBadRequest, "create needs id, bundle and exit_file")
	}
	s.mu.Lock()
	if _, ok := s.containers[req.ID]; ok {
		s.mu.Unlock()
		return nil, errorf(CodeAlreadyExists, "container %s already exists in pod %s", req.ID, s.cfg.PodID)
	}
	// Reserve the id while husk-oci runs.
	c := &container{id: req.ID, status: StatusCreated, exitFile: req.ExitFile, exited: make(chan struct{})}
	s.containers[req.ID] = c
	s.mu.Unlock()

	pid, err := s.createProcess(c, req)
	if err != nil {
		s.mu.Lock()
		delete(s.containers, req.ID)
		s.mu.Unlock()
		return nil, err
	}
	s.mu.Lock()
	c.pid = pid
	if req.Start {
		c.status = StatusRunning
	}
	s.mu.Unlock()
	go s.watch(c, s.reaper.wait(pid))
	return &Response{Pid: pid}, nil
}

func (s *Server) createProcess(c *container, req *Request) (int, error) {
	sp := readBundleSpec(req.Bundle)
	c.cgroup = sp.Linux.CgroupsPath
	var stdio ociIO
	console, finishStdio, err := s.createStdio(c, req, sp.Process.Terminal, &stdio)
	if err != nil {
		return 0, fmt.Errorf("create container %s: %w", c.id, err)
	}
	if stdio.console != nil {
		// A tty container's output arrives on the pty master, which
		// finishStdio receives; copyOutput starts below once it has.
	} else if req.LogPath != "" || !req.Start {
		// Output goes to the log, if there is one, and to attached
		// clients; only the infra container (created and started at once,
		// never attached to) writes nowhere.
		var lw *logWriter
		if req.LogPath != "" {
			if lw, err = openLog(req.LogPath); err != nil {
				return 0, fmt.Errorf("open log %s: %w", req.LogPath, err)
			}
		}
		closeLog := func() {
			if lw != nil {
				lw.Close()
			}
		}
		outR, outW, err := os.Pipe()
		if err != nil {
			closeLog()
			return 0, fmt.Errorf("stdout pipe: %w", err)
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			closeLog()
			outR.Close()
			outW.Close()
			return 0, fmt.Errorf("stderr pipe: %w", err)
		}
		defer outW.Close()
		defer errW.Close()
		stdio.stdout, stdio.stderr = outW, errW
		c.log = lw
		c.logs.Add(2)
		go func() { defer c.logs.Done(); defer outR.Close(); copyOutput(lw, "stdout", outR, &c.attach.out) }()
		go func() { defer c.logs.Done(); defer errR.Close(); copyOutput(lw, "stderr", errR, &c.attach.err) }()
	}
	cmd := "create"
	if req.Start {
		cmd = "run"
	}
	pid, err := s.runOCI(ociCall{cmd: cmd, id: c.id, bundle: req.Bundle, console: console}, stdio)
	if ferr := finishStdio(err == nil); err == nil && ferr != nil {
		// The init is waiting at the exec fifo (or running): take it down.
		_ = killPid(pid, int(unix.SIGKILL))
		_, _ = s.runOCI(ociCall{cmd: "delete", id: c.id}, ociIO{})
		err = ferr
	}
	if err == nil && stdio.console != nil {
		s.startTTYOutput(c, req.LogPath)
	}
	if err != nil {
		// A create that failed part-way (husk-oci killed, say) may have
		// left libcontainer's state and an init waiting at the exec
		// fifo: delete --force takes both down; for an id libcontainer
		// never recorded it does nothing.
		_, _ = s.runOCI(ociCall{cmd: "delete", id: c.id}, ociIO{})
		if c.log != nil {
			// The write ends close with this function; wait for the copiers
			// to see EOF so no goroutine outlives the failed create.
			go func(lw *logWriter) { c.logs.Wait(); lw.Close() }(c.log)
		}
		return 0, fmt.Errorf("create container %s: %w", c.id, err)
	}
	return pid, nil
}

// watch records the init's exit: on disk first, then in memory, then to
// anyone waiting, so a status a caller saw is never lost by a crash.
func (s *Server) watch(c *container, exited <-chan unix.WaitStatus) {
	ws := <-exited
	code, sig := exitCode(ws)
	st := &ExitStatus{Code: code, Signal: sig, FinishedAt: time.Now().UTC()}
	if sig == int(unix.SIGKILL) && oomKilled(c.cgroup) {
		st.OOMKilled = true
	}
	if c.log != nil {
		drained := make(chan struct{})
		go func() { c.logs.Wait(); close(drained) }()
		select {
		case <-drained:
		case <-time.After(logDrain):
			s.log.Warn("container output still open after exit", "id", c.id)
		}
	}
	if err := atomicfile.WriteJSON(c.exitFile, st); err != nil {
		s.log.Error("record exit status", "id", c.id, "error", err)
	}
	s.mu.Lock()
	c.status = StatusExited
	c.exit = st
	s.mu.Unlock()
	close(c.exited)
	s.log.Info("container exited", "id", c.id, "pid", c.pid, "code", code)
}

func (s *Server) start(ctx context.Context, req *Request) (*Response, error) {
	c, err := s.getIn(req.ID, StatusCreated)
	if err != nil {
		return nil, err
	}
	if s.cfg.Runtime.CLI {
		_, err = s.runOCI(ociCall{cmd: "start", id: c.id}, ociIO{})
	} else {
		err = s.startFifo(ctx, c)
	}
	if err != nil {
		return nil, fmt.Errorf("start container %s: %w", c.id, err)
	}
	s.mu.Lock()
	if c.status == StatusCreated {
		c.status = StatusRunning
	}
	s.mu.Unlock()
	return &Response{Pid: c.pid}, nil
}

func (s *Server) delete(ctx context.Context, req *Request) (*Response, error) {
	c, err := s.get(req.ID)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	running := c.status != StatusExited
	s.mu.Unlock()
	if running {
		if err := killPid(c.pid, int(unix.SIGKILL)); err != nil {
			return nil, fmt.Errorf("delete container %s: kill pid %d: %w", c.id, c.pid, err)
		}
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
			return nil, fmt.Errorf("delete container %s: pid %d still alive 10s after SIGKILL", c.id, c.pid)
		}
	}
	if _, err := s.runOCI(ociCall{cmd: "delete", id: c.id}, ociIO{}); err != nil {
		return nil, fmt.Errorf("delete container %s: %w", c.id, err)
	}
	s.mu.Lock()
	delete(s.containers, c.id)
	s.mu.Unlock()
	if c.log != nil {
		c.log.Close()
	}
	c.attach.close()
	return &Response{}, nil
}

// bundleSpec is the little of a container's OCI spec the shim needs: the
// cgroup (for the OOM check at exit) and whether it has a terminal. Only
// these fields are decoded: the spec also carries the seccomp profile,
// hundreds of rules the shim, paid for once per pod, need not hold even
// briefly.
type bundleSpec struct {
	Process struct {
		Terminal bool `json:"terminal"`
	} `json:"process"`
	Linux struct {
		CgroupsPath string `json:"cgroupsPath"`
	} `json:"linux"`
}

func readBundleSpec(bundle string) bundleSpec {
	var sp bundleSpec
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err == nil {
		_ = json.Unmarshal(data, &sp)
	}
	return sp
}
