package kubepod

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Probe is a container's liveness probe, as kubelet runs it: one of Exec,
// HTTPGet or TCPPort, with kubelet's timing defaults filled in.
type Probe struct {
	Exec    []string
	HTTPGet *HTTPGetProbe
	TCPPort int32

	InitialDelay, Period, Timeout time.Duration
	FailureThreshold              int32
}

// HTTPGetProbe is an httpGet probe, its named port resolved.
type HTTPGetProbe struct {
	Scheme  string // "http" or "https"
	Host    string // empty: the pod's IP
	Port    int32
	Path    string
	Headers map[string]string
}

// livenessProbe translates c's liveness probe; ok is false, with a reason,
// for one husk pod run cannot run (gRPC), which is then a warning.
func livenessProbe(c *corev1.Container, p *corev1.Probe) (_ *Probe, why string) {
	out := &Probe{
		InitialDelay:     time.Duration(p.InitialDelaySeconds) * time.Second,
		Period:           seconds(p.PeriodSeconds, 10),
		Timeout:          seconds(p.TimeoutSeconds, 1),
		FailureThreshold: p.FailureThreshold,
	}
	if out.FailureThreshold <= 0 {
		out.FailureThreshold = 3
	}
	switch h := p.ProbeHandler; {
	case h.Exec != nil:
		if len(h.Exec.Command) == 0 {
			return nil, "exec probe with no command"
		}
		out.Exec = h.Exec.Command
	case h.HTTPGet != nil:
		port, err := probePort(c, h.HTTPGet.Port)
		if err != nil {
			return nil, err.Error()
		}
		g := &HTTPGetProbe{Scheme: strings.ToLower(string(h.HTTPGet.Scheme)), Host: h.HTTPGet.Host, Port: port, Path: h.HTTPGet.Path}
		if g.Scheme == "" {
			g.Scheme = "http"
		}
		if g.Path == "" {
			g.Path = "/"
		}
		for _, hd := range h.HTTPGet.HTTPHeaders {
			if g.Headers == nil {
				g.Headers = map[string]string{}
			}
			g.Headers[hd.Name] = hd.Value
		}
		out.HTTPGet = g
	case h.TCPSocket != nil:
		port, err := probePort(c, h.TCPSocket.Port)
		if err != nil {
			return nil, err.Error()
		}
		if h.TCPSocket.Host != "" {
			return nil, "tcpSocket probes of another host are not supported"
		}
		out.TCPPort = port
	case h.GRPC != nil:
		return nil, "gRPC probes are not run by husk pod run"
	default:
		return nil, "a probe with no handler"
	}
	return out, ""
}

// probePort resolves a probe's port, a number or the name of one of c's
// ports, as kubelet does.
func probePort(c *corev1.Container, p intstr.IntOrString) (int32, error) {
	if p.Type == intstr.Int {
		if p.IntVal <= 0 || p.IntVal > 65535 {
			return 0, fmt.Errorf("port %d is out of range", p.IntVal)
		}
		return p.IntVal, nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort, nil
		}
	}
	return 0, fmt.Errorf("no container port named %q", p.StrVal)
}

func seconds(v, def int32) time.Duration {
	if v <= 0 {
		v = def
	}
	return time.Duration(v) * time.Second
}
