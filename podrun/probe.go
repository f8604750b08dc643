package podrun

// Liveness probes of a foreground `husk pod run`, run as kubelet runs them:
// from the node, exec through the CRI, httpGet and tcpSocket against the
// pod's IP. After FailureThreshold failures in a row the container is
// stopped with the pod's grace period, and the Supervisor's restart policy
// takes it from there.

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
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// probeLiveness runs st's liveness probe when it is due, on the running
// attempt cs, in a pod whose IP is podIP (empty for a host-network pod).
func (s *Supervisor) probeLiveness(ctx context.Context, st *supervised, cs *runtimeapi.ContainerStatus, podIP string) {
	lp := st.c.Liveness
	if lp == nil || st.killing || cs.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return
	}
	now := s.now()
	if now.Before(time.Unix(0, cs.StartedAt).Add(lp.InitialDelay)) || now.Before(st.nextProbe) {
		return
	}
	st.nextProbe = now.Add(lp.Period)
	err := s.runProbe(ctx, st.id, lp, podIP)
	if err == nil {
		st.probeFails = 0
		return
	}
	st.probeFails++
	fmt.Fprintf(s.r.Stderr, "liveness probe of %s in pod %s failed (%d of %d): %v\n", st.c.Name, s.p, st.probeFails, lp.FailureThreshold, err)
	if st.probeFails < lp.FailureThreshold {
		return
	}
	// Stopping waits out the grace period: not on the Supervisor's loop.
	st.killing = true
	fmt.Fprintf(s.r.Stderr, "container %s of pod %s failed its liveness probe; stopping it\n", st.c.Name, s.p)
	id, grace := st.id, s.p.Plan.GracePeriod
	go func() {
		cctx, cancel := context.WithTimeout(ctx, time.Duration(grace)*time.Second+s.r.Timeout)
		defer cancel()
		if _, err := s.r.Runtime.StopContainer(cctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: grace}); err != nil && !criclient.IsNotFound(err) {
			fmt.Fprintf(s.r.Stderr, "husk: %v\n", criclient.Wrap(err, "stop %s after its liveness probe failed", criclient.ShortID(id)))
		}
	}()
}

// runProbe runs one probe; nil is success.
func (s *Supervisor) runProbe(ctx context.Context, id string, lp *kubepod.Probe, podIP string) error {
	ctx, cancel := context.WithTimeout(ctx, lp.Timeout+s.r.Timeout)
	defer cancel()
	host := podIP
	if host == "" {
		host = "127.0.0.1" // a host-network pod listens on the node
	}
	switch {
	case lp.Exec != nil:
		// The runtime kills the command after the probe's timeout.
		resp, err := s.r.Runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: lp.Exec, Timeout: int64(lp.Timeout.Seconds())})
		if err != nil {
			return criclient.Wrap(err, "exec %q", lp.Exec)
		}
		if resp.ExitCode != 0 {
			return fmt.Errorf("exec %q: exit code %d", lp.Exec, resp.ExitCode)
		}
		return nil
	case lp.HTTPGet != nil:
		g := lp.HTTPGet
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
		client := &http.Client{Timeout: lp.Timeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", url, err)
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	default:
		addr := net.JoinHostPort(host, strconv.Itoa(int(lp.TCPPort)))
		d := net.Dialer{Timeout: lp.Timeout}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("connect %s: %w", addr, err)
		}
		return conn.Close()
	}
}
