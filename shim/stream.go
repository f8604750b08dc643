package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/husk-runtime/husk/atomicfile"
	"golang.org/x/sys/unix"
)

// consoleTimeout bounds the wait for runc init's pty master. It is sent
// before husk-oci returns, so it is normally already queued on the socket.
const consoleTimeout = 5 * time.Second

// attachWriteTimeout is how long a container's output waits for a slow
// attached client before that client is dropped: the container must not
// stall on a reader that went away without closing (its output is still
// logged in full).
const attachWriteTimeout = 10 * time.Second

func isStreamMethod(m string) bool { return m == MethodExecStream || m == MethodAttach }

// serveStream runs an exec_stream or attach session on conn; r reads the
// rest of the connection after the request.
func (s *Server) serveStream(conn net.Conn, r io.Reader, req *Request) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		_ = json.NewEncoder(conn).Encode(Response{Error: "streaming needs a unix socket", Code: CodeBadRequest})
		return
	}
	var err error
	if req.Version != Version {
		err = errorf(CodeVersion, "shim for pod %s speaks API v%d, the daemon speaks v%d: stop and remove the pod to recreate it", s.cfg.PodID, Version, req.Version)
	} else if req.Method == MethodExecStream {
		err = s.execStream(uc, r, req)
	} else {
		err = s.attach(uc, r, req)
	}
	if err != nil {
		// Only setup errors come back: once the descriptors are sent the
		// session ends by closing the connection.
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Code: CodeInternal, Message: err.Error()}
		}
		s.log.Warn("request failed", "method", req.Method, "id", req.ID, "error", e.Message)
		_ = json.NewEncoder(conn).Encode(Response{Error: e.Message, Code: e.Code})
	}
}

// sendStreams answers a streaming request with its descriptors, then closes
// the shim's copies of them: the daemon's are all that should keep the
// pipes open, so its Close is what the process sees.
func sendStreams(conn *net.UnixConn, resp Response, names []string, files []*os.File, keep bool) error {
	resp.Streams = names
	line, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	err = sendFds(conn, append(line, '\n'), files...)
	if !keep {
		closeAll(files)
	}
	return err
}

// execStream starts an exec whose stdio goes to the daemon, and reports its
// exit on the same connection.
func (s *Server) execStream(conn *net.UnixConn, r io.Reader, req *Request) error {
	c, err := s.getIn(req.ID, StatusRunning)
	if err != nil {
		return err
	}
	if req.Process == nil || len(req.Process.Args) == 0 {
		return errorf(CodeBadRequest, "exec in %s: no command", c.id)
	}
	dir, err := s.scratch(".exec-")
	if err != nil {
		return fmt.Errorf("exec in %s: %w", c.id, err)
	}
	defer os.RemoveAll(dir)
	procFile := filepath.Join(dir, "process.json")
	if err := atomicfile.WriteJSON(procFile, req.Process); err != nil {
		return fmt.Errorf("exec in %s: %w", c.id, err)
	}
	call := ociCall{cmd: "exec", id: c.id, process: procFile}

	// child: the ends husk-oci hands to the process; ours: the ends the
	// daemon gets. Both are closed here once they have been passed on.
	var stdio ociIO
	var child, ours []*os.File
	var names []string
	var console *net.UnixConn
	defer func() { closeAll(child) }()
	fail := func(err error) error {
		closeAll(ours)
		if console != nil {
			console.Close()
		}
		return fmt.Errorf("exec in %s: %w", c.id, err)
	}
	if req.Process.Terminal {
		parent, sock, err := consoleSocket()
		if err != nil {
			return fail(err)
		}
		console = parent
		child = append(child, sock)
		stdio.console = sock
		call.console = true
	} else {
		pipe := func(name string, childReads bool) (*os.File, error) {
			pr, pw, err := os.Pipe()
			if err != nil {
				return nil, fmt.Errorf("%s pipe: %w", name, err)
			}
			if childReads {
				child, ours = append(child, pr), append(ours, pw)
				names = append(names, name)
				return pr, nil
			}
			child, ours = append(child, pw), append(ours, pr)
			names = append(names, name)
			return pw, nil
		}
		if req.Stdin {
			if stdio.stdin, err = pipe(StreamStdin, true); err != nil {
				return fail(err)
			}
		}
		if stdio.stdout, err = pipe(StreamStdout, false); err != nil {
			return fail(err)
		}
		if stdio.stderr, err = pipe(StreamStderr, false); err != nil {
			return fail(err)
		}
	}
	pid, err := s.runOCI(call, stdio)
	closeAll(child)
	child = nil
	if err != nil {
		return fail(s.stoppedUnder(c, "exec", err))
	}
	exited := s.reaper.wait(pid)
	if console != nil {
		master, err := recvConsole(console, consoleTimeout)
		console.Close()
		console = nil
		if err != nil {
			_ = killPid(pid, int(unix.SIGKILL))
			<-exited
			return fail(err)
		}
		ours, names = []*os.File{master}, []string{StreamPty}
	}
	if err := sendStreams(conn, Response{Pid: pid}, names, ours, false); err != nil {
		_ = killPid(pid, int(unix.SIGKILL))
		<-exited
		s.log.Warn("exec stream: send stdio to daemon", "id", c.id, "pid", pid, "error", err)
		return nil
	}
	s.log.Debug("exec stream started", "id", c.id, "pid", pid, "tty", req.Process.Terminal)

	hangup := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, r); close(hangup) }()
	var ws unix.WaitStatus
	select {
	case ws = <-exited:
	case <-hangup:
		// The daemon is gone or gave up on the session: nobody can see
		// the process's output or its exit any more.
		_ = killPid(pid, int(unix.SIGKILL))
		<-exited
		s.log.Info("exec stream: daemon hung up, process killed", "id", c.id, "pid", pid)
		return nil
	}
	code, sig := exitCode(ws)
	_ = json.NewEncoder(conn).Encode(Response{Exited: true, Exit: &ExitStatus{Code: code, Signal: sig, FinishedAt: time.Now().UTC()}})
	return nil
}

// attach passes the daemon what it needs to join the main process's stdio:
// a descriptor for its stdin (shared: several attachers may type into one
// container, as with containerd), and a fresh pipe per output stream that
// the log copier feeds as well.
func (s *Server) attach(conn *net.UnixConn, r io.Reader, req *Request) error {
	c, err := s.get(req.ID)
	if err != nil {
		return err
	}
	s.mu.Lock()
	status := c.status
	s.mu.Unlock()
	if status == StatusExited {
		return errorf(CodeBadRequest, "attach to %s: container has exited", c.id)
	}
	a := &c.attach
	var files []*os.File
	var names []string
	var added []*attachWriter
	fail := func(err error) error {
		for _, w := range added {
			w.fan.remove(w)
		}
		return fmt.Errorf("attach to %s: %w", c.id, err)
	}
	a.mu.Lock()
	stdin, pty := a.stdin, a.pty
	a.mu.Unlock()
	if pty != nil {
		// Always sent for a tty: the daemon resizes through it.
		files, names = append(files, pty), append(names, StreamPty)
	} else if req.Stdin {
		if stdin == nil {
			return errorf(CodeBadRequest, "attach to %s: the container was not created with stdin (or its stdin was closed)", c.id)
		}
		files, names = append(files, stdin), append(names, StreamStdin)
	}
	// A tty has one output stream, logged as stdout.
	want := []struct {
		on   bool
		name string
		fan  *fanout
	}{{req.Stdout || (pty != nil && req.Stderr), StreamStdout, &a.out}, {req.Stderr && pty == nil, StreamStderr, &a.err}}
	var readEnds []*os.File
	for _, w := range want {
		if !w.on {
			continue
		}
		pr, pw, err := os.Pipe()
		if err != nil {
			closeAll(readEnds)
			return fail(fmt.Errorf("%s pipe: %w", w.name, err))
		}
		aw := &attachWriter{f: pw, fan: w.fan}
		if !w.fan.add(aw) {
			// The stream already ended (the container is exiting):
			// the daemon reads EOF at once.
			pw.Close()
		} else {
			added = append(added, aw)
		}
		readEnds = append(readEnds, pr)
		files, names = append(files, pr), append(names, w.name)
	}
	err = sendStreams(conn, Response{Pid: c.pid}, names, files, true)
	closeAll(readEnds) // stdin and pty stay open: the container owns them
	if err != nil {
		s.log.Warn("attach: send stdio to daemon", "id", c.id, "error", err)
		for _, w := range added {
			w.fan.remove(w)
		}
		return nil
	}
	s.log.Debug("attached", "id", c.id, "streams", names)
	defer func() {
		for _, w := range added {
			w.fan.remove(w)
		}
	}()

	msgs := make(chan string)
	hangup := make(chan struct{})
	go func() {
		defer close(hangup)
		dec := json.NewDecoder(r)
		for {
			var m Request
			if dec.Decode(&m) != nil {
				return
			}
			select {
			case msgs <- m.Method:
			case <-c.exited:
				return
			}
		}
	}()
	for {
		select {
		case <-c.exited:
			s.mu.Lock()
			st := c.exit
			s.mu.Unlock()
			_ = json.NewEncoder(conn).Encode(Response{Exited: true, Exit: st})
			return nil
		case <-hangup:
			return nil
		case m := <-msgs:
			if m == MethodCloseStdin {
				a.closeStdin()
			}
		}
	}
}

// attachPoint is what a container keeps for Attach.
type attachPoint struct {
	mu    sync.Mutex
	stdin *os.File // write end of the container's stdin pipe (not for a tty)
	pty   *os.File // pty master of a tty container: its input and its output
	out   fanout   // stdout (a tty's only output)
	err   fanout
}

func (a *attachPoint) closeStdin() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stdin != nil {
		a.stdin.Close()
		a.stdin = nil
	}
}

// close releases the container's stdin and pty; the output fan-outs close
// themselves when their streams end.
func (a *attachPoint) close() {
	a.closeStdin()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pty != nil {
		a.pty.Close()
		a.pty = nil
	}
}

// fanout copies one output stream of a container to every attached client.
// It is written to by the stream's log copier (through io.TeeReader), so it
// never fails: a client that cannot keep up is dropped instead.
type fanout struct {
	mu     sync.Mutex
	ws     map[*attachWriter]struct{}
	closed bool
}

type attachWriter struct {
	f   *os.File
	fan *fanout
}

func (f *fanout) add(w *attachWriter) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	if f.ws == nil {
		f.ws = map[*attachWriter]struct{}{}
	}
	f.ws[w] = struct{}{}
	return true
}

func (f *fanout) remove(w *attachWriter) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.ws[w]; ok {
		delete(f.ws, w)
		w.f.Close()
	}
}

func (f *fanout) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for w := range f.ws {
		// os.Pipe ends are non-blocking and on the poller, so the
		// deadline bounds the write.
		_ = w.f.SetWriteDeadline(time.Now().Add(attachWriteTimeout))
		if _, err := w.f.Write(p); err != nil {
			delete(f.ws, w)
			w.f.Close()
		}
	}
	return len(p), nil
}

// close ends the stream for every client (they read EOF) and for any that
// attach later.
func (f *fanout) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for w := range f.ws {
		w.f.Close()
	}
	f.ws = nil
}

// ptyReader reads a pty master, turning EIO (every slave fd is closed: the
// container has exited) into EOF.
type ptyReader struct{ f *os.File }

func (p ptyReader) Read(b []byte) (int, error) {
	n, err := p.f.Read(b)
	if errors.Is(err, syscall.EIO) {
		err = io.EOF
	}
	return n, err
}

// createStdio prepares a new container's stdin and terminal for Attach: a
// pipe whose write end the shim holds (CRI stdin), or the console socket
// a tty container's pty master arrives on (console is then true). finish
// completes the setup once the runtime has run; its error fails the create.
func (s *Server) createStdio(c *container, req *Request, terminal bool, stdio *ociIO) (console bool, finish func(ok bool) error, err error) {
	if terminal {
		parent, sock, err := consoleSocket()
		if err != nil {
			return false, nil, err
		}
		stdio.console = sock
		stdio.stdin, stdio.stdout, stdio.stderr = nil, nil, nil
		return true, func(ok bool) error {
			sock.Close()
			defer parent.Close()
			if !ok {
				return nil
			}
			master, err := recvConsole(parent, consoleTimeout)
			if err != nil {
				return err
			}
			c.attach.mu.Lock()
			c.attach.pty = master
			c.attach.mu.Unlock()
			return nil
		}, nil
	}
	if !req.Stdin {
		return false, func(bool) error { return nil }, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return false, nil, fmt.Errorf("stdin pipe: %w", err)
	}
	stdio.stdin = pr
	return false, func(ok bool) error {
		pr.Close()
		if !ok {
			pw.Close()
			return nil
		}
		c.attach.mu.Lock()
		c.attach.stdin = pw
		c.attach.mu.Unlock()
		return nil
	}, nil
}

// copyOutput feeds one output stream to the log (if any) and to attached
// clients, and ends the stream for them at EOF.
func copyOutput(lw *logWriter, stream string, r io.Reader, fan *fanout) {
	defer fan.close()
	tee := io.TeeReader(r, fan)
	if lw == nil {
		_, _ = io.Copy(io.Discard, tee)
		return
	}
	copyLog(lw, stream, tee)
}

// startTTYOutput logs a tty container's output, read from its pty master,
// as its stdout (a pty merges the streams), and feeds attached clients.
func (s *Server) startTTYOutput(c *container, logPath string) {
	var lw *logWriter
	if logPath != "" {
		var err error
		if lw, err = openLog(logPath); err != nil {
			// The container runs; only its log is lost, as with a full disk.
			s.log.Error("open log of tty container", "id", c.id, "path", logPath, "error", err)
			lw = nil
		}
	}
	c.attach.mu.Lock()
	master := c.attach.pty
	c.attach.mu.Unlock()
	c.log = lw
	c.logs.Add(1)
	go func() { defer c.logs.Done(); copyOutput(lw, "stdout", ptyReader{master}, &c.attach.out) }()
}
