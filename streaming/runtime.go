// Package streaming is husk's side of the CRI streaming server: the
// k8s.io/cri-streaming library speaks the exec, attach and port-forward
// protocols (SPDY and WebSocket) with kubelet or crictl, and calls the
// Runtime here for the work. Exec and Attach get the process's stdio from
// the pod's shim as file descriptors and copy between them and the client
// in the daemon; PortForward dials inside the pod's network namespace.
package streaming

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/husk-runtime/husk/network"
	"github.com/husk-runtime/husk/sandbox"
	"github.com/husk-runtime/husk/shim"
	"golang.org/x/sys/unix"
	crstreaming "k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// outputDrain bounds how long an exec's output is still copied after the
// process exited: a child it left in the background may hold the pipes
// open, and the session must end with the process, as kubectl expects.
const outputDrain = time.Second

// Runtime implements crstreaming.Runtime over the sandbox manager.
type Runtime struct {
	Sandboxes *sandbox.Manager
	Log       *slog.Logger
}

var _ crstreaming.Runtime = (*Runtime)(nil)

// Exec runs cmd in the container with the client's streams attached. A
// non-zero exit is returned as a utilexec.ExitError, which the library
// sends to the client as the exit code (kubectl exits with it).
func (r *Runtime) Exec(ctx context.Context, containerID string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	st, err := r.Sandboxes.ExecStream(ctx, containerID, cmd, tty, in != nil)
	if err != nil {
		return err
	}
	defer st.Close()
	s := newSession(st)
	if tty {
		go resizeLoop(st.Pty, resize, r.Log)
		s.copyOut(out, st.Pty, true)
		if in != nil {
			// A tty client sends ^D as a byte; its stream ending means
			// the client is gone, so the session ends (the shim kills the
			// process).
			go func() { _, _ = io.Copy(st.Pty, in); s.clientGone() }()
		}
	} else {
		s.copyOut(out, st.Stdout, false)
		s.copyOut(errw, st.Stderr, false)
		if in != nil && st.Stdin != nil {
			// The process reads EOF once the client closes its stdin.
			go func() { _, _ = io.Copy(st.Stdin, in); st.Stdin.Close() }()
		}
	}
	exitc := make(chan waitResult, 1)
	go func() { e, err := st.Wait(); exitc <- waitResult{e, err} }()
	var res waitResult
	select {
	case res = <-exitc:
	case <-s.gone:
	case <-ctx.Done():
		// The library cancels the request's context when the client's
		// connection closes.
	}
	if res.exit == nil && res.err == nil {
		// The client went away before the process ended.
		st.Close() // the shim kills the process
		<-exitc
		r.Log.Debug("exec client went away; process killed", "container", containerID, "cmd", cmd)
		return nil
	}
	if res.err != nil {
		return fmt.Errorf("exec %q in %s: %w", cmd, containerID, res.err)
	}
	s.drain(outputDrain)
	if res.exit.Code != 0 {
		return utilexec.CodeExitError{
			Err:  fmt.Errorf("command %q in container %s exited with code %d", cmd, containerID, res.exit.Code),
			Code: res.exit.Code,
		}
	}
	return nil
}

// Attach joins the container's main process stdio until it exits or the
// client leaves. Input goes to the container only if it was created with
// stdin; with stdin_once, the end of this session's input closes the
// container's stdin (kubelet's contract for `kubectl run -i`).
func (r *Runtime) Attach(ctx context.Context, containerID string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	tgt, err := r.Sandboxes.RunningContainer(containerID)
	if err != nil {
		return err
	}
	wantIn := in != nil && tgt.Stdin
	st, err := r.Sandboxes.Attach(ctx, tgt.ID, wantIn, out != nil, errw != nil)
	if err != nil {
		return err
	}
	defer st.Close()
	s := newSession(st)
	if st.Pty != nil {
		go resizeLoop(st.Pty, resize, r.Log)
	}
	outputs := 0
	if out != nil && st.Stdout != nil {
		s.copyOut(out, st.Stdout, false)
		outputs++
	}
	if errw != nil && st.Stderr != nil {
		s.copyOut(errw, st.Stderr, false)
		outputs++
	}
	inDone := make(chan struct{})
	stdinClosed := false
	closeContainerStdin := func() {
		if !stdinClosed && tgt.StdinOnce && wantIn && st.Pty == nil {
			stdinClosed = true
			_ = st.CloseStdin()
		}
	}
	defer closeContainerStdin()
	if wantIn {
		w := st.Stdin
		if st.Pty != nil {
			w = st.Pty
		}
		go func() {
			if w != nil {
				_, _ = io.Copy(w, in)
			}
			close(inDone)
		}()
	}
	exitc := make(chan struct{})
	go func() { _, _ = st.Wait(); close(exitc) }()
	outDone := s.outputsDone()
	if outputs == 0 {
		outDone = nil
	}
	for {
		select {
		case <-outDone:
			// Every output stream ended: the container exited.
			return nil
		case <-exitc:
			if outputs == 0 {
				return nil
			}
			s.drain(outputDrain)
			return nil
		case <-s.gone:
			return nil
		case <-inDone:
			inDone = nil
			if !tgt.StdinOnce || st.Pty != nil {
				// Nothing more to send and nothing says the container
				// should see EOF: the client is done with this session.
				return nil
			}
			if st.Stdin != nil {
				st.Stdin.Close()
			}
			closeContainerStdin()
			if outputs == 0 {
				return nil
			}
		case <-ctx.Done():
			// The client's connection closed: detach.
			return nil
		}
	}
}

// PortForward connects stream to port inside the pod's network namespace
// (on the host's loopback for a host-network pod).
func (r *Runtime) PortForward(ctx context.Context, podSandboxID string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	netns, err := r.Sandboxes.PortForwardNetns(podSandboxID)
	if err != nil {
		return err
	}
	if port <= 0 || port > 65535 {
		return fmt.Errorf("port-forward to pod %s: port %d out of range", podSandboxID, port)
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := dialPod(dctx, netns, port)
	if err != nil {
		return fmt.Errorf("port-forward to pod %s port %d: %w", podSandboxID, port, err)
	}
	defer conn.Close()
	toPod := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, stream)
		// The client closed its side: pass the half-close on, so the
		// server sees EOF and can still answer.
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		toPod <- err
	}()
	fromPod := make(chan error, 1)
	go func() { _, err := io.Copy(stream, conn); fromPod <- err }()
	select {
	case err = <-fromPod:
	case err = <-toPod:
		if err == nil {
			// Wait for the answer to the half-closed request.
			select {
			case err = <-fromPod:
			case <-ctx.Done():
			}
		}
	case <-ctx.Done():
	}
	if err != nil && !isClosed(err) {
		return fmt.Errorf("port-forward to pod %s port %d: %w", podSandboxID, port, err)
	}
	return nil
}

// dialPod dials the pod's loopback, IPv4 first: a server may listen on
// either family's loopback, or on the wildcard.
func dialPod(ctx context.Context, netns string, port int32) (net.Conn, error) {
	var firstErr error
	for _, host := range []string{"127.0.0.1", "::1"} {
		addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
		var conn net.Conn
		var err error
		if netns == "" {
			var d net.Dialer
			conn, err = d.DialContext(ctx, "tcp", addr)
		} else {
			conn, err = network.DialContext(ctx, netns, "tcp", addr)
		}
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

type waitResult struct {
	exit *shim.ExitStatus
	err  error
}

// session tracks the output copies of one exec or attach.
type session struct {
	st       *shim.Stream
	wg       sync.WaitGroup
	gone     chan struct{} // the client stopped taking output or input
	goneOnce sync.Once
}

func newSession(st *shim.Stream) *session { return &session{st: st, gone: make(chan struct{})} }

func (s *session) clientGone() { s.goneOnce.Do(func() { close(s.gone) }) }

// copyOut copies one output stream to the client. Without a client stream
// the output is read and dropped: closing the pipe instead would kill the
// process with SIGPIPE at its first write.
func (s *session) copyOut(dst io.Writer, f *os.File, pty bool) {
	if f == nil {
		return
	}
	var src io.Reader = f
	if pty {
		src = ptyReader{f}
	}
	if dst == nil {
		dst = io.Discard
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if _, err := io.Copy(dst, src); err != nil && !errors.Is(err, os.ErrClosed) {
			// A write to the client failed (a read error is ours, from
			// Close): nobody is there any more.
			s.clientGone()
		}
	}()
}

// outputsDone is closed when every output copy has ended.
func (s *session) outputsDone() <-chan struct{} {
	c := make(chan struct{})
	go func() { s.wg.Wait(); close(c) }()
	return c
}

// drain waits up to d for the output copies to reach EOF, then cuts them
// off by closing the descriptors (a Close interrupts the blocked reads: the
// files are non-blocking and on the poller).
func (s *session) drain(d time.Duration) {
	select {
	case <-s.outputsDone():
	case <-time.After(d):
		s.st.Close()
		s.wg.Wait()
	}
}

// ptyReader reads a pty master, turning EIO (the last slave fd closed: the
// process exited) into EOF.
type ptyReader struct{ f *os.File }

func (p ptyReader) Read(b []byte) (int, error) {
	n, err := p.f.Read(b)
	if errors.Is(err, syscall.EIO) {
		err = io.EOF
	}
	return n, err
}

// resizeLoop applies the client's terminal sizes to the pty until the
// channel closes with the session.
func resizeLoop(pty *os.File, resize <-chan remotecommand.TerminalSize, log *slog.Logger) {
	if pty == nil || resize == nil {
		return
	}
	for size := range resize {
		if size.Width == 0 || size.Height == 0 {
			continue
		}
		if err := setWinsize(pty, size.Width, size.Height); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			log.Debug("resize pty", "error", err)
		}
	}
}

// setWinsize sets the pty's window size; the kernel sends SIGWINCH to the
// terminal's foreground process group. It goes through SyscallConn, not
// Fd(): Fd would switch the file to blocking mode, and a blocked Read could
// then no longer be interrupted by Close.
func setWinsize(pty *os.File, width, height uint16) error {
	rc, err := pty.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		ioErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: height, Col: width})
	}); err != nil {
		return err
	}
	if ioErr != nil {
		return fmt.Errorf("TIOCSWINSZ %dx%d: %w", width, height, ioErr)
	}
	return nil
}
