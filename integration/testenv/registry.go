package testenv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RegistryBinary is Debian's distribution registry (package docker-registry).
var RegistryBinary = "/usr/bin/docker-registry"

// Registry is a running docker-registry on 127.0.0.1.
type Registry struct {
	// Addr is "127.0.0.1:PORT".
	Addr string
	// Dir holds config.yml, the storage root (storage/) and registry.log.
	Dir string
	// TLS is the client configuration for a registry serving HTTPS
	// (RegistryOptions.ClientTLS); nil for plain HTTP.
	TLS *tls.Config

	cmd  *exec.Cmd
	done chan struct{}
	err  error // exit status, valid once done is closed
}

// StartRegistry starts a registry with its storage in t.TempDir() and stops
// it in t.Cleanup.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	r, err := StartRegistryProcess(t.TempDir())
	if err != nil {
		t.Fatalf("start registry: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Logf("stop registry: %v", err)
		}
	})
	return r
}

const registryConfig = `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
`

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StartRegistryProcess starts a registry whose config, storage and log live
// in dir, on a free port of 127.0.0.1, and waits until GET /v2/ answers. The
// caller must call Stop.
func StartRegistryProcess(dir string) (*Registry, error) {
	return StartRegistryProcessWith(dir, RegistryOptions{})
}

// RegistryOptions add to a registry's configuration.
type RegistryOptions struct {
	// Auth is the YAML body of the config's "auth:" section, indented by
	// two spaces, e.g. "  htpasswd:\n    realm: r\n    path: /p\n". Empty:
	// no authentication.
	Auth string
	// TLSCert and TLSKey are PEM files of the server certificate and its
	// key: when set, the registry serves HTTPS only (http.tls).
	TLSCert, TLSKey string
	// ClientCAs are PEM files of CAs: when set (with TLSCert), the
	// registry requires a client certificate signed by one of them
	// (http.tls.clientcas).
	ClientCAs []string
	// ClientTLS is what a client needs to reach a registry with TLSCert:
	// the CA it trusts and, with ClientCAs, a client certificate. The
	// readiness probe uses it; it is kept as Registry.TLS for pushes.
	ClientTLS *tls.Config
}

// StartRegistryProcessWith is StartRegistryProcess with options. A registry
// with Auth is ready when GET /v2/ answers 401.
func StartRegistryProcessWith(dir string, opts RegistryOptions) (*Registry, error) {
	if _, err := os.Stat(RegistryBinary); err != nil {
		return nil, fmt.Errorf("%s not found (apt-get install docker-registry): %w", RegistryBinary, err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a free port may be taken before the registry binds it
		r, err := startRegistry(dir, opts)
		if err == nil {
			return r, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func startRegistry(dir string, opts RegistryOptions) (*Registry, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	storage := filepath.Join(dir, "storage")
	if err := os.MkdirAll(storage, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := filepath.Join(dir, "config.yml")
	yml := fmt.Sprintf(registryConfig, storage, addr)
	scheme, probe := "http", &http.Client{Timeout: 2 * time.Second}
	if opts.TLSCert != "" {
		if opts.ClientTLS == nil {
			return nil, errors.New("registry with TLSCert: ClientTLS is needed to probe it")
		}
		yml += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", opts.TLSCert, opts.TLSKey)
		if len(opts.ClientCAs) > 0 {
			yml += "    clientcas:\n"
			for _, ca := range opts.ClientCAs {
				yml += fmt.Sprintf("      - %s\n", ca)
			}
		}
		scheme = "https"
		probe.Transport = &http.Transport{TLSClientConfig: opts.ClientTLS.Clone()}
	}
	ready := http.StatusOK
	if opts.Auth != "" {
		yml += "auth:\n" + opts.Auth
		ready = http.StatusUnauthorized
	}
	if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "registry.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()

	cmd := exec.Command(RegistryBinary, "serve", cfg)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Keep REGISTRY_* settings of the caller's environment out of the config.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &Registry{Addr: addr, Dir: dir, TLS: opts.ClientTLS, cmd: cmd, done: make(chan struct{})}
	go func() { r.err = cmd.Wait(); close(r.done) }()

	defer probe.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-r.done:
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("docker-registry exited: %v: %s", r.err, tail(log, 2000))
		default:
		}
		resp, err := probe.Get(scheme + "://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == ready {
				return r, nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		if time.Now().After(deadline) {
			r.Stop()
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("docker-registry on %s not ready: %v: %s", addr, err, tail(log, 2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Stop stops the registry: SIGTERM, then SIGKILL after 5 s; it waits for the
// process to exit. Stop may be called more than once.
func (r *Registry) Stop() error {
	if r == nil || r.cmd == nil || r.cmd.Process == nil {
		return nil
	}
	select {
	case <-r.done:
		return nil
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	var ee *exec.ExitError
	if r.err != nil && !errors.As(r.err, &ee) {
		return r.err
	}
	return nil
}

// URL returns "http://Addr", or "https://Addr" for a registry with TLS.
func (r *Registry) URL() string {
	if r.TLS != nil {
		return "https://" + r.Addr
	}
	return "http://" + r.Addr
}

// Ref returns the reference repo[:tag|@digest] in this registry, e.g.
// r.Ref("e2e-test-images/busybox:1.29-2").
func (r *Registry) Ref(repo string) string { return r.Addr + "/" + strings.TrimPrefix(repo, "/") }

// Wait returns when the registry has stopped, with its error, or when ctx
// ends.
func (r *Registry) Wait(ctx context.Context) error {
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}
