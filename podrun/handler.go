package podrun

// Probes and lifecycle hooks, run as kubelet runs them (pkg/kubelet/prober
// and lifecycle in 1.37): from the node, exec through the CRI's ExecSync,
// httpGet, tcpSocket and gRPC against the pod's IP (127.0.0.1 for a
// host-network pod), sleep in the caller.

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"github.com/husk-runtime/husk/kubepod"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// minGracePeriod is what kubelet leaves the container after its preStop
// hook took the grace period (minimumGracePeriodInSeconds).
const minGracePeriod = 2

// runHandler runs h for the container id in a pod whose IP is podIP,
// giving it timeout; nil is success.
func (r *Runner) runHandler(ctx context.Context, id string, h *kubepod.Handler, podIP string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout+r.Timeout)
	defer cancel()
	host := podIP
	if host == "" {
		host = "127.0.0.1" // a host-network pod listens on the node
	}
	switch {
	case h.Exec != nil:
		// The runtime kills the command after the timeout.
		resp, err := r.Runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: h.Exec, Timeout: int64(timeout.Seconds())})
		if err != nil {
			return criclient.Wrap(err, "exec %q", h.Exec)
		}
		if resp.ExitCode != 0 {
			return fmt.Errorf("exec %q: exit code %d", h.Exec, resp.ExitCode)
		}
		return nil
	case h.HTTPGet != nil:
		g := h.HTTPGet
		if g.Host != "" {
			host = g.Host
		}
		url := g.Scheme + "://" + net.JoinHostPort(host, strconv.Itoa(int(g.Port))) + g.Path
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("GET %s: %w", url, err)
		}
		for k, v := range g.Headers {
			req.Header.Set(k, v)
		}
		// kubelet does not verify a probed server's certificate either.
		client := &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", url, err)
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	case h.GRPC != nil:
		addr := net.JoinHostPort(host, strconv.Itoa(int(h.GRPC.Port)))
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return fmt.Errorf("gRPC health of %s: %w", addr, err)
		}
		defer conn.Close()
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		resp, err := healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{Service: h.GRPC.Service})
		if err != nil {
			return fmt.Errorf("gRPC health of %s: %w", addr, err)
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("gRPC health of %s: %s", addr, resp.Status)
		}
		return nil
	case h.Sleep > 0:
		select {
		case <-time.After(min(h.Sleep, timeout)):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	case h.TCPPort != 0:
		addr := net.JoinHostPort(host, strconv.Itoa(int(h.TCPPort)))
		d := net.Dialer{Timeout: timeout}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("connect %s: %w", addr, err)
		}
		return conn.Close()
	}
	return nil // sleep 0
}

// podIP is the pod's IP, for probes and hooks; empty for host network
// (or when the runtime does not say).
func (r *Runner) podIP(ctx context.Context, sandboxID string) string {
	cctx, cancel := r.ctx(ctx)
	defer cancel()
	st, err := r.Runtime.PodSandboxStatus(cctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sandboxID})
	if err != nil {
		return ""
	}
	return st.GetStatus().GetNetwork().GetIp()
}

// stopContainer is kubelet's killContainer: the preStop hook first, given
// the grace period, then StopContainer with what is left of it (at least
// minGracePeriod after a hook).
func (r *Runner) stopContainer(ctx context.Context, id, name string, preStop *kubepod.Handler, podIP string, grace int64) error {
	if preStop != nil && grace > 0 {
		began := time.Now()
		if err := r.runHandler(ctx, id, preStop, podIP, time.Duration(grace)*time.Second); err != nil {
			fmt.Fprintf(r.Stderr, "preStop hook of %s (%s) failed: %v\n", name, criclient.ShortID(id), err)
		}
		grace = max(grace-int64(time.Since(began).Seconds()), minGracePeriod)
	}
	cctx, cancel := context.WithTimeout(ctx, time.Duration(grace)*time.Second+r.Timeout)
	defer cancel()
	_, err := r.Runtime.StopContainer(cctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: grace})
	return criclient.Wrap(err, "stop container %s (%s)", name, criclient.ShortID(id))
}
