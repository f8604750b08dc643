package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// ServerConfig is what husk-shim is started with.
type ServerConfig struct {
	PodID   string
	Socket  string  // where to listen
	Runtime Runtime // what makes the pod's containers
}

// Server is the per-pod supervisor.
type Server struct {
	cfg    ServerConfig
	reaper *reaper
	log    *slog.Logger

	mu         sync.Mutex
	containers map[string]*container

	done chan struct{}
	once sync.Once

	trimMu    sync.Mutex
	trimTimer *time.Timer

	warmMu sync.Mutex
	spare  *warmHelper // a husk-oci waiting for its call (warm.go)
}

// trimDelay is how long the shim waits after its last request before it
// hands freed heap back to the kernel.
const trimDelay = time.Second

// trim returns the memory a burst of requests used to the kernel once the
// burst is over. The shim is idle nearly all its life and is paid for once
// per pod, so holding on to a few hundred kB of freed heap per pod is the
// wrong trade; one extra GC after a burst costs well under a millisecond.
func (s *Server) trim() {
	s.trimMu.Lock()
	defer s.trimMu.Unlock()
	if s.trimTimer == nil {
		s.trimTimer = time.AfterFunc(trimDelay, debug.FreeOSMemory)
		return
	}
	s.trimTimer.Reset(trimDelay)
}

// container is one container the shim holds. exited is closed once the
// exit status is on disk.
type container struct {
	id       string
	pid      int
	status   string
	exit     *ExitStatus
	exitFile string
	cgroup   string
	exited   chan struct{}
	logs     sync.WaitGroup
	log      *logWriter
	attach   attachPoint // stdin, pty and output fan-out for Attach
	killGen  uint64      // counts kills, so a later one ends redeliver's watch
}

// NewServer makes a server; Serve runs it.
func NewServer(cfg ServerConfig, log *slog.Logger) *Server {
	return &Server{cfg: cfg, reaper: newReaper(), log: log, containers: map[string]*container{}, done: make(chan struct{})}
}

// Serve accepts requests on l until shutdown or ctx ends.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	// For the pod's infra container, which is the first call. Started
	// before the first accept, not beside it: the shim launch runs beside
	// the daemon's other pod set-up, so the run call can come within 2 ms
	// of serving, before a goroutine had made the helper (seen in CI).
	// The listener queues connections meanwhile.
	s.warm()
	go func() {
		select {
		case <-ctx.Done():
		case <-s.done:
		}
		l.Close()
	}()
	for {
		conn, err := l.Accept()
		if err != nil {
			select {
			case <-s.done:
				return nil
			case <-ctx.Done():
				return nil
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("accept on %s: %w", s.cfg.Socket, err)
		}
		go s.handleConn(ctx, conn)
	}
}

func (s *Server) handleConn(ctx context.Context, conn net.Conn) {
	defer s.trim()
	defer conn.Close()
	var req Request
	dec := json.NewDecoder(conn)
	if err := dec.Decode(&req); err != nil {
		_ = json.NewEncoder(conn).Encode(Response{Error: "bad request: " + err.Error(), Code: CodeBadRequest})
		return
	}
	if isStreamMethod(req.Method) {
		// A session, not one answer: see stream_api.go.
		s.serveStream(conn, io.MultiReader(dec.Buffered(), conn), &req)
		return
	}
	// A client sends one request and then only waits; its connection
	// closing (a daemon that went away, or gave up) cancels the call, so a
	// wait or exec nobody listens to any more does not hold the shim.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, io.MultiReader(dec.Buffered(), conn))
		cancel()
	}()
	resp, err := s.handle(ctx, &req)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Code: CodeInternal, Message: err.Error()}
		}
		resp = &Response{Error: e.Message, Code: e.Code}
		s.log.Warn("request failed", "method", req.Method, "id", req.ID, "error", e.Message)
	}
	_ = json.NewEncoder(conn).Encode(resp)
}

func (s *Server) handle(ctx context.Context, req *Request) (*Response, error) {
	if req.Version != Version {
		return nil, errorf(CodeVersion, "shim for pod %s speaks API v%d, the daemon speaks v%d: stop and remove the pod to recreate it", s.cfg.PodID, Version, req.Version)
	}
	switch req.Method {
	case MethodVersion:
		return &Response{Version: Version}, nil
	case MethodCreate:
		return s.create(ctx, req)
	case MethodStart:
		return s.start(ctx, req)
	case MethodKill:
		return s.kill(req)
	case MethodWait:
		return s.wait(ctx, req)
	case MethodExec:
		return s.exec(ctx, req)
	case MethodDelete:
		return s.delete(ctx, req)
	case MethodState:
		return s.state(), nil
	case MethodReopen:
		return s.reopenLog(req)
	case MethodUpdate:
		return s.update(req)
	case MethodShutdown:
		return s.shutdown()
	}
	return nil, errorf(CodeBadRequest, "unknown method %q", req.Method)
}

func (s *Server) get(id string) (*container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.containers[id]
	if !ok {
		return nil, errorf(CodeNotFound, "container %s not found in shim of pod %s", id, s.cfg.PodID)
	}
	return c, nil
}

// getIn returns the container with id if it is in the given status.
func (s *Server) getIn(id, want string) (*container, error) {
	c, err := s.get(id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	status := c.status
	s.mu.Unlock()
	if status != want {
		return nil, errorf(CodeBadRequest, "container %s is %s, not %s", c.id, status, want)
	}
	return c, nil
}

func (s *Server) state() *Response {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &Response{}
	for _, c := range s.containers {
		resp.Containers = append(resp.Containers, Container{ID: c.id, Pid: c.pid, Status: c.status, Exit: c.exit})
	}
	return resp
}

func (s *Server) kill(req *Request) (*Response, error) {
	c, err := s.get(req.ID)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.status == StatusExited {
		return &Response{}, nil
	}
	// The shim is the init's parent and has not reaped it, so the pid
	// cannot have been reused.
	c.killGen++
	// Read before the send (see redeliver.go); SIGKILL needs no read.
	pid := c.pid
	watch := mayDrop(req.Signal, func() bool { return s.beforeExec(pid) }, func() (disposition, error) { return readDisposition(pid) })
	if err := killPid(pid, req.Signal); err != nil {
		return nil, fmt.Errorf("kill container %s (pid %d) with signal %d: %w", c.id, pid, req.Signal, err)
	}
	if watch {
		go s.redeliver(c, pid, req.Signal, c.killGen)
	}
	return &Response{}, nil
}

func (s *Server) wait(ctx context.Context, req *Request) (*Response, error) {
	c, err := s.get(req.ID)
	if err != nil {
		return nil, err
	}
	var timeout <-chan time.Time
	if req.Timeout > 0 {
		t := time.NewTimer(req.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-c.exited:
		s.mu.Lock()
		defer s.mu.Unlock()
		return &Response{Exited: true, Exit: c.exit}, nil
	case <-timeout:
		return &Response{Exited: false}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *Server) shutdown() (*Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.containers {
		if c.status != StatusExited {
			return nil, errorf(CodeBadRequest, "shim of pod %s: container %s is still %s", s.cfg.PodID, c.id, c.status)
		}
	}
	// Let the response go out before the listener closes.
	go func() {
		time.Sleep(10 * time.Millisecond)
		s.once.Do(func() { close(s.done) })
	}()
	return &Response{}, nil
}

// Done is closed when the shim was asked to shut down.
func (s *Server) Done() <-chan struct{} { return s.done }

// scratch makes a private temporary dir for one call's files (a process
// or resources JSON). husk-oci's root is husk's own; an external runtime's
// root must hold nothing but its containers (its list would trip on them).
func (s *Server) scratch(prefix string) (string, error) {
	if s.cfg.Runtime.CLI {
		return os.MkdirTemp("", "husk-"+strings.TrimPrefix(prefix, "."))
	}
	return os.MkdirTemp(s.cfg.Runtime.Root, prefix)
}
