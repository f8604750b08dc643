package criclient

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	crstreaming "k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// scriptRuntime is a streaming runtime whose "commands" are Go: the
// server side is k8s.io/cri-streaming itself, the library husk's daemon and
// containerd serve with, so the client is tested against the real protocol.
type scriptRuntime struct{}

func (scriptRuntime) Exec(ctx context.Context, _ string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	switch cmd[0] {
	case "upper": // stdin to stdout in upper case, then a line on stderr
		b, _ := io.ReadAll(in)
		fmt.Fprint(out, strings.ToUpper(string(b)))
		fmt.Fprint(errw, "done\n")
		return nil
	case "size": // the first terminal size sent
		s := <-resize
		fmt.Fprintf(out, "%dx%d\n", s.Width, s.Height)
		return nil
	case "exit":
		fmt.Fprint(out, "bye\n")
		return utilexec.CodeExitError{Err: fmt.Errorf("exit 7"), Code: 7}
	case "fail":
		return fmt.Errorf("runtime broke")
	}
	return fmt.Errorf("unknown script %q", cmd[0])
}

func (scriptRuntime) Attach(ctx context.Context, _ string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	_, err := io.Copy(out, in)
	return err
}

// PortForward answers "pong <port> <what was sent>".
func (scriptRuntime) PortForward(ctx context.Context, _ string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	if port == 9 {
		return fmt.Errorf("nothing listens on port %d", port)
	}
	b, _ := io.ReadAll(stream)
	_, err := fmt.Fprintf(stream, "pong %d %s", port, b)
	return err
}

func startStreamingServer(t *testing.T) crstreaming.Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := crstreaming.DefaultConfig
	cfg.Addr = l.Addr().String()
	cfg.BaseURL = &url.URL{Scheme: "http", Host: cfg.Addr}
	srv, err := crstreaming.NewServer(cfg, scriptRuntime{})
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(l) }()
	t.Cleanup(func() { hs.Close() })
	return srv
}

func execURL(t *testing.T, srv crstreaming.Server, req *runtimeapi.ExecRequest) string {
	t.Helper()
	req.ContainerId = "c1"
	resp, err := srv.GetExec(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Url
}

func runSession(t *testing.T, url string, rc *RemoteCommand) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := DialStream(ctx, url, RemoteCommandV4)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return rc.Run(conn)
}

func TestRemoteCommandStdinStdoutStderr(t *testing.T) {
	srv := startStreamingServer(t)
	var out, errOut bytes.Buffer
	code, err := runSession(t, execURL(t, srv, &runtimeapi.ExecRequest{Cmd: []string{"upper"}, Stdin: true, Stdout: true, Stderr: true}),
		&RemoteCommand{Stdin: strings.NewReader("hello\n"), Stdout: &out, Stderr: &errOut})
	if err != nil || code != 0 {
		t.Fatalf("session: code %d, %v", code, err)
	}
	if out.String() != "HELLO\n" || errOut.String() != "done\n" {
		t.Errorf("stdout %q stderr %q; want HELLO and done", out.String(), errOut.String())
	}
}

func TestRemoteCommandExitCodeAndError(t *testing.T) {
	srv := startStreamingServer(t)
	var out bytes.Buffer
	code, err := runSession(t, execURL(t, srv, &runtimeapi.ExecRequest{Cmd: []string{"exit"}, Stdout: true}), &RemoteCommand{Stdout: &out})
	if err != nil || code != 7 || out.String() != "bye\n" {
		t.Errorf("exit 7: code %d, err %v, stdout %q", code, err, out.String())
	}
	_, err = runSession(t, execURL(t, srv, &runtimeapi.ExecRequest{Cmd: []string{"fail"}, Stdout: true}), &RemoteCommand{Stdout: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "runtime broke") {
		t.Errorf("runtime error: got %v, want the server's message", err)
	}
}

func TestRemoteCommandTTYResize(t *testing.T) {
	srv := startStreamingServer(t)
	sizes := make(chan TermSize, 1)
	sizes <- TermSize{Width: 101, Height: 31}
	var out bytes.Buffer
	code, err := runSession(t, execURL(t, srv, &runtimeapi.ExecRequest{Cmd: []string{"size"}, Stdout: true, Tty: true}),
		&RemoteCommand{Stdout: &out, TTY: true, Resize: sizes})
	if err != nil || code != 0 || out.String() != "101x31\n" {
		t.Errorf("tty session: code %d, err %v, stdout %q; want 101x31", code, err, out.String())
	}
}

func TestForwardConn(t *testing.T) {
	srv := startStreamingServer(t)
	resp, err := srv.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := DialStream(ctx, resp.Url, PortForwardV1)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Two connections over the one streaming connection, each a pair of
	// streams with its own request id; the half-close of the local side
	// reaches the pod, which still answers.
	for i, port := range []uint16{8080, 8081} {
		local, remote := tcpPair(t)
		done := make(chan error, 1)
		go func() { done <- ForwardConn(conn, i, port, remote) }()
		if _, err := local.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		_ = local.SetDeadline(time.Now().Add(10 * time.Second))
		if err := local.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(local)
		if want := fmt.Sprintf("pong %d ping", port); string(b) != want {
			t.Errorf("connection %d: got %q, want %q", i, b, want)
		}
		if err := <-done; err != nil {
			t.Errorf("connection %d: %v", i, err)
		}
	}
	// A port the runtime cannot reach: its message comes back.
	local, remote := tcpPair(t)
	go func() { _, _ = io.Copy(io.Discard, local) }()
	if err := ForwardConn(conn, 9, 9, remote); err == nil || !strings.Contains(err.Error(), "nothing listens on port 9") {
		t.Errorf("unreachable port: got %v", err)
	}
}

// tcpPair is a connected pair of loopback TCP connections: unlike
// net.Pipe they can half-close, as a forwarded client does.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}
