package criclient

// The client side of the CRI streaming protocols that exec, attach and
// port-forward speak with a runtime's streaming server (husk's, or
// containerd's): an HTTP request upgraded to SPDY/3.1, then one SPDY stream
// per stdio channel (remote command, kubelet's v4 protocol) or a pair of
// streams per forwarded connection (port-forward). k8s.io/streaming has the
// SPDY connection and round tripper; the protocol on top is client-go's
// remotecommand and portforward, written again here so that the CLI does
// not link client-go.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

// Protocol names, as k8s.io/cri-streaming's server knows them.
const (
	RemoteCommandV4 = "v4.channel.k8s.io"
	PortForwardV1   = "portforward.k8s.io"
)

// Headers of the streams.
const (
	hdrStreamType = "streamType"
	hdrPort       = "port"
	hdrRequestID  = "requestID"
)

// DialStream opens the SPDY connection of a streaming URL, offering the
// given subprotocol. The URL's token is single-use: one connection per CRI
// Exec, Attach or PortForward call.
func DialStream(ctx context.Context, rawURL, protocol string) (httpstream.Connection, error) {
	rt, err := spdy.NewRoundTripper(nil)
	if err != nil {
		return nil, fmt.Errorf("streaming client: %w", err)
	}
	// POST, as kubelet's and kubectl's clients send; the server takes any
	// method for an upgrade.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("streaming URL %q: %w", rawURL, err)
	}
	req.Header.Set(httpstream.HeaderProtocolVersion, protocol)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("connect to the streaming server at %s: %w", req.URL.Host, err)
	}
	conn, err := rt.NewConnection(resp)
	if err != nil {
		return nil, fmt.Errorf("streaming server at %s: %w", req.URL.Host, err)
	}
	if got := resp.Header.Get(httpstream.HeaderProtocolVersion); got != protocol {
		conn.Close()
		return nil, fmt.Errorf("streaming server at %s does not speak %s (answered %q)", req.URL.Host, protocol, got)
	}
	return conn, nil
}

// TermSize is one resize message of the remote command protocol (JSON
// with these capitalised field names, as the server decodes it).
type TermSize struct {
	Width  uint16
	Height uint16
}

// RemoteCommand is one exec or attach session. The streams asked for must
// be the ones the CRI request named: the server waits for exactly those.
type RemoteCommand struct {
	Stdin          io.Reader // nil: no stdin stream
	Stdout, Stderr io.Writer // nil: no such stream
	TTY            bool
	Resize         <-chan TermSize // with tty: sizes to send, the first one at once
}

// ExitCodeError is a command that ran and exited non-zero.
type ExitCodeError struct{ Code int }

func (e *ExitCodeError) Error() string { return fmt.Sprintf("command exited with code %d", e.Code) }

// Run drives a session on conn until the remote process ends (or, for an
// attach, the server ends the session) and returns the process's exit
// code: 0, the code of an ExitCodeError, or an error saying what failed.
func (rc *RemoteCommand) Run(conn httpstream.Connection) (int, error) {
	defer conn.Close()
	create := func(kind string) (httpstream.Stream, error) {
		h := http.Header{}
		h.Set(hdrStreamType, kind)
		s, err := conn.CreateStream(h)
		if err != nil {
			return nil, fmt.Errorf("create %s stream: %w", kind, err)
		}
		return s, nil
	}
	errStream, err := create("error")
	if err != nil {
		return 0, err
	}
	// Only the server writes on the error stream.
	_ = errStream.Close()
	var stdin, stdout, stderr, resize httpstream.Stream
	if rc.Stdin != nil {
		if stdin, err = create("stdin"); err != nil {
			return 0, err
		}
	}
	if rc.Stdout != nil {
		if stdout, err = create("stdout"); err != nil {
			return 0, err
		}
	}
	if rc.Stderr != nil && !rc.TTY {
		if stderr, err = create("stderr"); err != nil {
			return 0, err
		}
	}
	if rc.TTY {
		if resize, err = create("resize"); err != nil {
			return 0, err
		}
	}

	statusc := make(chan error, 1)
	go func() {
		msg, err := io.ReadAll(errStream)
		if err != nil {
			statusc <- fmt.Errorf("read the session's status: %w", err)
			return
		}
		statusc <- decodeStatus(msg)
	}()
	if resize != nil && rc.Resize != nil {
		go func() {
			enc := json.NewEncoder(resize)
			for size := range rc.Resize {
				if enc.Encode(size) != nil {
					return
				}
			}
		}()
	}
	if stdin != nil {
		go func() {
			// The end of our input is the end of the process's input
			// (the server closes its stdin when the stream half-closes).
			_, _ = io.Copy(stdin, rc.Stdin)
			_ = stdin.Close()
		}()
	}
	var wg sync.WaitGroup
	for _, p := range []struct {
		dst io.Writer
		src httpstream.Stream
	}{{rc.Stdout, stdout}, {rc.Stderr, stderr}} {
		if p.src == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = io.Copy(p.dst, p.src)
		}()
	}
	// The server closes the output streams when the process is done and
	// writes the status last; waiting for both keeps the output whole.
	wg.Wait()
	err = <-statusc
	var ec *ExitCodeError
	if errors.As(err, &ec) {
		return ec.Code, nil
	}
	return 0, err
}

// streamStatus is the v4 error stream's message: a Kubernetes Status.
type streamStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Reason  string `json:"reason"`
	Details *struct {
		Causes []struct {
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"causes"`
	} `json:"details"`
}

// decodeStatus turns the error stream's content into nil (success), an
// ExitCodeError, or the server's message as an error.
func decodeStatus(msg []byte) error {
	if len(msg) == 0 {
		return nil
	}
	var st streamStatus
	if err := json.Unmarshal(msg, &st); err != nil {
		return fmt.Errorf("streaming server: %s", msg)
	}
	if st.Status == "Success" {
		return nil
	}
	if st.Reason == "NonZeroExitCode" && st.Details != nil {
		for _, c := range st.Details.Causes {
			if c.Reason == "ExitCode" {
				code, err := strconv.Atoi(c.Message)
				if err != nil {
					return fmt.Errorf("streaming server: exit code %q: %w", c.Message, err)
				}
				return &ExitCodeError{Code: code}
			}
		}
	}
	return fmt.Errorf("streaming server: %s", st.Message)
}

// ForwardConn carries one local connection to port of the pod over conn,
// as a data stream and an error stream sharing a request id. It returns
// when both directions are done; a message on the error stream (the
// runtime could not reach the port) is returned as an error.
func ForwardConn(conn httpstream.Connection, requestID int, port uint16, local io.ReadWriteCloser) error {
	defer local.Close()
	h := http.Header{}
	h.Set(hdrStreamType, "error")
	h.Set(hdrPort, strconv.Itoa(int(port)))
	h.Set(hdrRequestID, strconv.Itoa(requestID))
	errStream, err := conn.CreateStream(h)
	if err != nil {
		return fmt.Errorf("create error stream: %w", err)
	}
	_ = errStream.Close()
	h.Set(hdrStreamType, "data")
	data, err := conn.CreateStream(h)
	if err != nil {
		conn.RemoveStreams(errStream)
		return fmt.Errorf("create data stream: %w", err)
	}
	defer conn.RemoveStreams(errStream, data)

	errc := make(chan error, 1)
	go func() {
		// On failure the server writes its message, then resets the
		// streams: the message counts even when the read ends in error.
		msg, err := io.ReadAll(errStream)
		switch {
		case len(msg) > 0:
			errc <- errors.New(string(msg))
		case err != nil:
			errc <- fmt.Errorf("read error stream: %w", err)
		default:
			errc <- nil
		}
	}()
	fromPod := make(chan struct{})
	go func() {
		_, _ = io.Copy(local, data)
		close(fromPod)
	}()
	go func() {
		// The local client's half-close reaches the pod's server, which
		// may still answer.
		_, _ = io.Copy(data, local)
		_ = data.Close()
	}()
	// The server closes the error stream once its side is done, right
	// after the data stream: what it says there is the outcome.
	select {
	case <-fromPod:
	case err := <-errc:
		if err != nil {
			return err
		}
		<-fromPod
		return nil
	}
	select {
	case err := <-errc:
		return err
	case <-time.After(5 * time.Second):
		return nil
	}
}
