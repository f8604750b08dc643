package shim

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// runCLI runs one call through an external OCI runtime's command line. The
// runtime gets the process's stdio as its own fds 0-2 and passes them on to
// the process (runc and crun both do, for create, run and exec alike), so
// what the runtime itself prints on stderr lands in the container's log,
// as under containerd; its error is read from --log instead.
//
// A pty's master arrives on a listening socket at a path (the runtime's
// --console-socket); it is forwarded over console, the socket pair end
// husk-oci would have been given, so the callers receive it the same way
// for both kinds of runtime.
func (s *Server) runCLI(call ociCall, stdio []*os.File, console *os.File) (int, error) {
	rt := s.cfg.Runtime
	// Short and private: a socket path must fit in 108 bytes, and the
	// runtime's --root must hold nothing but its containers.
	dir, err := os.MkdirTemp("", "husk-oci-call-")
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", rt.Path, call.cmd, err)
	}
	defer os.RemoveAll(dir)
	argv, err := rt.cliArgv(call, dir)
	if err != nil {
		return 0, err
	}
	var forwarded chan error
	if call.console {
		if console == nil {
			return 0, fmt.Errorf("%s %s: a pty without a console socket", rt.Path, call.cmd)
		}
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "console.sock"), Net: "unix"})
		if err != nil {
			return 0, fmt.Errorf("%s %s: console socket: %w", rt.Path, call.cmd, err)
		}
		defer l.Close()
		forwarded = make(chan error, 1)
		go func() { forwarded <- forwardConsole(l, console) }()
	}
	p, err := os.StartProcess(rt.Path, argv, &os.ProcAttr{
		Files: stdio,
		Env:   []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
	})
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", rt.Path, err)
	}
	pid := p.Pid // Release sets p.Pid to -1
	_ = p.Release()
	ws := <-s.reaper.wait(pid) // the reaper collects the status
	if code, _ := exitCode(ws); code != 0 {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		msg := cliError(log)
		if msg == "" {
			msg = fmt.Sprintf("exited with status %d", code)
		}
		return 0, fmt.Errorf("%s %s: %s", filepath.Base(rt.Path), call.cmd, msg)
	}
	if forwarded != nil {
		// The runtime sent the master before it exited; the forwarder is
		// done or about to be.
		select {
		case err := <-forwarded:
			if err != nil {
				return 0, fmt.Errorf("%s %s: %w", filepath.Base(rt.Path), call.cmd, err)
			}
		case <-time.After(consoleTimeout):
			return 0, fmt.Errorf("%s %s: no pty master on the console socket", filepath.Base(rt.Path), call.cmd)
		}
	}
	switch call.cmd {
	case "create", "run", "exec":
		b, err := os.ReadFile(filepath.Join(dir, "pid"))
		if err != nil {
			return 0, fmt.Errorf("%s %s: read its pid file: %w", filepath.Base(rt.Path), call.cmd, err)
		}
		pid, err := strconv.Atoi(string(bytes.TrimSpace(b)))
		if err != nil || pid <= 0 {
			return 0, fmt.Errorf("%s %s: pid file holds %q", filepath.Base(rt.Path), call.cmd, b)
		}
		return pid, nil
	}
	return 0, nil
}

// forwardConsole accepts the runtime's connection on l, receives the pty
// master it sends and passes it on over to (a socket pair end whose other
// end recvConsole reads).
func forwardConsole(l *net.UnixListener, to *os.File) error {
	_ = l.SetDeadline(time.Now().Add(consoleTimeout))
	conn, err := l.AcceptUnix()
	if err != nil {
		return fmt.Errorf("console socket: %w", err)
	}
	defer conn.Close()
	master, err := recvConsole(conn, consoleTimeout)
	if err != nil {
		return err
	}
	defer master.Close()
	fc, err := net.FileConn(to) // a dup: the caller closes its own
	if err != nil {
		return fmt.Errorf("console socket pair: %w", err)
	}
	defer fc.Close()
	return sendFds(fc.(*net.UnixConn), []byte(master.Name()), master)
}
