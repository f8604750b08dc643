package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/husk-runtime/husk/sandbox"
	"github.com/husk-runtime/husk/streaming"
	crstreaming "k8s.io/cri-streaming/pkg/streaming"
)

// streamingServer is the exec/attach/port-forward HTTP server.
type streamingServer struct {
	crstreaming.Server
	http *http.Server
	addr string
}

// startStreaming listens on addr and serves the streaming protocols. It
// listens before building the library's server, rather than letting the
// library's Start listen, so that the URLs handed out name the real port
// (addr may ask for port 0) from the first request on.
func startStreaming(addr string, mgr *sandbox.Manager, log *slog.Logger) (*streamingServer, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("streaming server: listen on %s: %w", addr, err)
	}
	cfg := crstreaming.DefaultConfig
	cfg.Addr = l.Addr().String()
	cfg.BaseURL = &url.URL{Scheme: "http", Host: cfg.Addr}
	srv, err := crstreaming.NewServer(cfg, &streaming.Runtime{Sandboxes: mgr, Log: log.With("component", "streaming")})
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("streaming server: %w", err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("streaming server stopped", "address", cfg.Addr, "error", err)
		}
	}()
	return &streamingServer{Server: srv, http: hs, addr: cfg.Addr}, nil
}

// stop closes the listener and every open stream: an exec whose client
// connection closes is killed by its shim.
func (s *streamingServer) stop() { _ = s.http.Close() }
