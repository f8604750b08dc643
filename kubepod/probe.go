package kubepod

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Probe is a container's liveness, readiness or startup probe, as kubelet
// runs it: one Handler, with kubelet's timing defaults filled in.
type Probe struct {
	Handler

	InitialDelay, Period, Timeout      time.Duration
	FailureThreshold, SuccessThreshold int32
}

// Handler is what a probe or a lifecycle hook does: exactly one of Exec,
// HTTPGet, TCPPort, GRPC or Sleep (hooks only). It is also kept, as JSON,
// in the annotation of a container with a preStop hook
// (AnnotationPreStop), so that any `husk pod stop` runs it.
type Handler struct {
	Exec    []string      `json:"exec,omitempty"`
	HTTPGet *HTTPGetProbe `json:"httpGet,omitempty"`
	TCPPort int32         `json:"tcpPort,omitempty"`
	GRPC    *GRPCProbe    `json:"grpc,omitempty"`
	Sleep   time.Duration `json:"sleep,omitempty"`
}

// HTTPGetProbe is an httpGet probe or hook, its named port resolved.
type HTTPGetProbe struct {
	Scheme  string            `json:"scheme"` // "http" or "https"
	Host    string            `json:"host,omitempty"`
	Port    int32             `json:"port"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers,omitempty"`
}

// GRPCProbe asks the gRPC health service on Port about Service.
type GRPCProbe struct {
	Port    int32  `json:"port"`
	Service string `json:"service,omitempty"`
}

// probe translates one of c's probes (kind: liveness, readiness or
// startup); nil, with a reason, for one husk pod run cannot run, which is
// then a warning.
func probe(c *corev1.Container, kind string, p *corev1.Probe) (_ *Probe, why string) {
	out := &Probe{
		InitialDelay:     time.Duration(p.InitialDelaySeconds) * time.Second,
		Period:           seconds(p.PeriodSeconds, 10),
		Timeout:          seconds(p.TimeoutSeconds, 1),
		FailureThreshold: p.FailureThreshold,
		SuccessThreshold: p.SuccessThreshold,
	}
	if out.FailureThreshold <= 0 {
		out.FailureThreshold = 3
	}
	if out.SuccessThreshold <= 0 {
		out.SuccessThreshold = 1
	}
	if kind != "readiness" && out.SuccessThreshold != 1 {
		// The API server refuses it; kubelet would never see it.
		return nil, fmt.Sprintf("successThreshold must be 1 for a %s probe", kind)
	}
	h := p.ProbeHandler
	if h.GRPC != nil {
		if h.GRPC.Port <= 0 || h.GRPC.Port > 65535 {
			return nil, fmt.Sprintf("port %d is out of range", h.GRPC.Port)
		}
		out.GRPC = &GRPCProbe{Port: h.GRPC.Port}
		if h.GRPC.Service != nil {
			out.GRPC.Service = *h.GRPC.Service
		}
		return out, ""
	}
	hd, why := handler(c, corev1.LifecycleHandler{Exec: h.Exec, HTTPGet: h.HTTPGet, TCPSocket: h.TCPSocket})
	if hd == nil {
		return nil, why
	}
	out.Handler = *hd
	return out, ""
}

// handler translates a probe's or hook's handler.
func handler(c *corev1.Container, h corev1.LifecycleHandler) (*Handler, string) {
	switch {
	case h.Exec != nil:
		if len(h.Exec.Command) == 0 {
			return nil, "exec with no command"
		}
		return &Handler{Exec: h.Exec.Command}, ""
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
		return &Handler{HTTPGet: g}, ""
	case h.TCPSocket != nil:
		port, err := probePort(c, h.TCPSocket.Port)
		if err != nil {
			return nil, err.Error()
		}
		if h.TCPSocket.Host != "" {
			return nil, "tcpSocket of another host is not supported"
		}
		return &Handler{TCPPort: port}, ""
	case h.Sleep != nil:
		if h.Sleep.Seconds < 0 {
			return nil, fmt.Sprintf("sleep of %d seconds", h.Sleep.Seconds)
		}
		return &Handler{Sleep: time.Duration(h.Sleep.Seconds) * time.Second}, ""
	}
	return nil, "no handler"
}

// hook translates a lifecycle hook. kubelet 1.37 runs tcpSocket hooks as
// a no-op (they are deprecated and never were implemented), so they are
// a warning here too.
func hook(c *corev1.Container, h *corev1.LifecycleHandler) (*Handler, string) {
	if h.TCPSocket != nil {
		return nil, "tcpSocket hooks are not run by kubelet either"
	}
	return handler(c, *h)
}

// PreStop reads the preStop hook kept in a container's annotations; nil
// when it has none.
func PreStop(annotations map[string]string) (*Handler, error) {
	v, ok := annotations[AnnotationPreStop]
	if !ok {
		return nil, nil
	}
	h := &Handler{}
	if err := json.Unmarshal([]byte(v), h); err != nil {
		return nil, fmt.Errorf("annotation %s: %w", AnnotationPreStop, err)
	}
	return h, nil
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
