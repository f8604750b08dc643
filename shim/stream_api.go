package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The streaming methods, added to API v1 without a version bump: old
// requests are untouched, the new fields are optional, and a shim that
// predates them answers "unknown method", which the daemon reports as the
// pod needing to be recreated for streaming.
//
// Both run a session on their connection instead of one request and one
// answer:
//
//  1. The daemon sends the request as usual.
//  2. The shim answers with one JSON line sent in a single sendmsg(2) that
//     carries the stream's descriptors (SCM_RIGHTS); Response.Streams names
//     them in order. On failure the answer is an ordinary error response
//     without descriptors.
//  3. The daemon copies between its client and those descriptors itself:
//     the bytes never pass through the shim (attach output excepted, which
//     the shim already reads to write the log).
//  4. When the process ends, the shim sends a second JSON line with its
//     exit status and closes the connection. If the daemon hangs up first,
//     the session is over: an exec process is killed (no one can read its
//     output any more, and a pty would hang up anyway); an attach just
//     detaches.
//
// On an attach connection the daemon may send {"method":"close_stdin"} to
// close the container's stdin (CRI stdin_once: the first attach session's
// end of input is the container's).
const (
	MethodExecStream = "exec_stream"
	MethodAttach     = "attach"
	MethodCloseStdin = "close_stdin" // only inside an attach session
)

// Names of the descriptors a streaming answer carries.
const (
	StreamStdin  = "stdin"  // write end of the process's stdin pipe
	StreamStdout = "stdout" // read end of a stdout pipe
	StreamStderr = "stderr" // read end of a stderr pipe
	StreamPty    = "pty"    // the pty master: input, resize (and an exec's output)
)

// StreamRequest holds the streaming fields of Request.
type StreamRequest struct {
	// Stdin: for create, hold a pipe as the container's stdin so that
	// Attach can write to it (CRI ContainerConfig.stdin); for exec_stream
	// and attach, pass the caller a way to write the process's stdin.
	Stdin bool `json:"stdin,omitempty"`
	// Stdout and Stderr: for attach, which output streams to pass. An
	// exec_stream always gets both (a pty has just one).
	Stdout bool `json:"stdout,omitempty"`
	Stderr bool `json:"stderr,omitempty"`
}

// StreamResponse holds the streaming fields of Response.
type StreamResponse struct {
	Streams []string `json:"streams,omitempty"`
}

// streamSetupTimeout bounds the shim's answer to a streaming request; the
// session after it has no limit.
const streamSetupTimeout = 30 * time.Second

// Stream is the daemon's end of an exec or attach session. Its files are
// non-blocking, so Close from another goroutine interrupts a Read or Write.
type Stream struct {
	Stdin  *os.File // nil unless requested (and for attach, unless the container has stdin)
	Stdout *os.File // for an exec with a tty: nil, the output is read from Pty
	Stderr *os.File
	Pty    *os.File // the pty master, for a tty: resize it here
	Pid    int

	conn *net.UnixConn
	dec  *json.Decoder

	writeMu sync.Mutex
	once    sync.Once
}

// ExecStream starts proc (proc.Terminal picks a pty) in the running
// container id and returns its stdio. ctx bounds only the start.
func (c *Client) ExecStream(ctx context.Context, id string, proc *specs.Process, stdin bool) (*Stream, error) {
	return c.openStream(ctx, Request{Method: MethodExecStream, ID: id, Process: proc,
		StreamRequest: StreamRequest{Stdin: stdin, Stdout: true, Stderr: true}})
}

// Attach joins the stdio of container id's main process.
func (c *Client) Attach(ctx context.Context, id string, stdin, stdout, stderr bool) (*Stream, error) {
	return c.openStream(ctx, Request{Method: MethodAttach, ID: id,
		StreamRequest: StreamRequest{Stdin: stdin, Stdout: stdout, Stderr: stderr}})
}

func (c *Client) openStream(ctx context.Context, req Request) (*Stream, error) {
	req.Version = Version
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", c.Socket)
	if err != nil {
		return nil, fmt.Errorf("connect to shim %s: %w", c.Socket, err)
	}
	conn := nc.(*net.UnixConn)
	ok := false
	defer func() {
		if !ok {
			conn.Close()
		}
	}()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, fmt.Errorf("send %s to shim %s: %w", req.Method, c.Socket, err)
	}
	line, rest, files, err := recvLine(conn, streamSetupTimeout)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("read %s answer from shim %s: %w", req.Method, c.Socket, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		closeAll(files)
		return nil, fmt.Errorf("read %s answer from shim %s: %w", req.Method, c.Socket, err)
	}
	if resp.Error != "" {
		closeAll(files)
		return nil, &Error{Code: resp.Code, Message: resp.Error}
	}
	if len(files) != len(resp.Streams) {
		closeAll(files)
		return nil, fmt.Errorf("%s: shim %s sent %d descriptors for streams %v", req.Method, c.Socket, len(files), resp.Streams)
	}
	if !stop() {
		// ctx ended while we read: the deadline may be set.
		closeAll(files)
		return nil, ctx.Err()
	}
	_ = conn.SetDeadline(time.Time{})
	s := &Stream{Pid: resp.Pid, conn: conn}
	for i, name := range resp.Streams {
		switch name {
		case StreamStdin:
			s.Stdin = files[i]
		case StreamStdout:
			s.Stdout = files[i]
		case StreamStderr:
			s.Stderr = files[i]
		case StreamPty:
			s.Pty = files[i]
		default:
			files[i].Close()
		}
	}
	s.dec = json.NewDecoder(io.MultiReader(bytes.NewReader(rest), conn))
	ok = true
	return s, nil
}

// Wait blocks until the shim reports the process's exit (for attach: the
// container's). It fails if the session ended without one: the shim died,
// or Close was called.
func (s *Stream) Wait() (*ExitStatus, error) {
	var resp Response
	if err := s.dec.Decode(&resp); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("shim closed the session without an exit status")
		}
		return nil, fmt.Errorf("read exit status from shim: %w", err)
	}
	if resp.Error != "" {
		return nil, &Error{Code: resp.Code, Message: resp.Error}
	}
	if !resp.Exited || resp.Exit == nil {
		return nil, fmt.Errorf("shim sent no exit status")
	}
	return resp.Exit, nil
}

// CloseStdin closes an attached container's stdin in the shim too, so the
// container reads EOF (the daemon's own copy must be closed as well).
func (s *Stream) CloseStdin() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := json.NewEncoder(s.conn).Encode(Request{Version: Version, Method: MethodCloseStdin}); err != nil {
		return fmt.Errorf("ask shim to close stdin: %w", err)
	}
	return nil
}

// Close ends the session: the shim kills an exec process that still runs,
// or detaches an attach. It closes every descriptor of the stream.
func (s *Stream) Close() error {
	s.once.Do(func() {
		closeAll([]*os.File{s.Stdin, s.Stdout, s.Stderr, s.Pty})
		s.conn.Close()
	})
	return nil
}

// CreateWithStdin is Create for a container whose stdin the shim holds open
// as a pipe, for Attach (CRI ContainerConfig.stdin). A shim from before
// streaming ignores the field: the container then gets /dev/null.
func (c *Client) CreateWithStdin(ctx context.Context, id, bundle, logPath, exitFile string, stdin bool) (int, error) {
	r, err := c.call(ctx, Request{Method: MethodCreate, ID: id, Bundle: bundle, LogPath: logPath, ExitFile: exitFile,
		StreamRequest: StreamRequest{Stdin: stdin}})
	if err != nil {
		return 0, err
	}
	return r.Pid, nil
}
