// Package metrics holds husk's Prometheus metrics and serves them on
// metrics.address (off by default). Everything is recorded whether or not
// the endpoint is on: a counter costs an atomic add, and turning it on
// needs no other change.
//
// The names, all under husk_, with their labels:
//
//	grpc_requests_total{service,method,code}      every unary and stream call served
//	grpc_request_duration_seconds{service,method} their latency
//	pod_start_duration_seconds                    RunPodSandbox's start to the pod's first container started
//	image_pulls_total{registry,result}            PullImage outcomes (result: ok or the gRPC code's name)
//	image_pull_bytes_total{registry}              layer bytes received
//	image_pull_duration_seconds{registry}         whole successful pulls
//	pods{state}, containers{state}, shims         what runs now, read at scrape
//	recovered_pods_total{outcome}                 what recovery at start made of each pod record
//	image_gc_runs_total, image_gc_removed_total{kind}  collections and what they removed
//
// plus the Go runtime's and the process's own (go_*, process_*).
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

const namespace = "husk"

// Live is what runs now, by state: the gauges read at each scrape.
type Live struct {
	Pods       map[string]int // by pod state
	Containers map[string]int // by container state
	Shims      int            // shim processes believed alive
}

// Metrics is the daemon's metric set, over a registry of its own.
type Metrics struct {
	reg *prometheus.Registry

	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	podStart  prometheus.Histogram
	pulls     *prometheus.CounterVec
	pullBytes *prometheus.CounterVec
	pullTime  *prometheus.HistogramVec
	recovered *prometheus.CounterVec
	gcRuns    prometheus.Counter
	gcRemoved *prometheus.CounterVec
	live      *liveCollector
}

// New makes the metric set with the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "grpc_requests_total",
			Help: "gRPC calls served (CRI and husk's API), by service, method and status code.",
		}, []string{"service", "method", "code"}),
		// CRI calls run from well under a millisecond (lists) to minutes
		// (pulls, a stop's grace period).
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "grpc_request_duration_seconds",
			Help:    "Latency of gRPC calls, by service and method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14), // 0.5 ms to ~75 s
		}, []string{"service", "method"}),
		podStart: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "pod_start_duration_seconds",
			Help:    "From RunPodSandbox's start to the pod's first container started.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12), // 50 ms to ~100 s
		}),
		pulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "image_pulls_total",
			Help: "Image pulls, by the image's registry and result (ok, or the gRPC code's name).",
		}, []string{"registry", "result"}),
		pullBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "image_pull_bytes_total",
			Help: "Layer bytes received from registries, by the image's registry.",
		}, []string{"registry"}),
		pullTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "image_pull_duration_seconds",
			Help:    "Duration of successful image pulls, by the image's registry.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 12), // 100 ms to ~200 s
		}, []string{"registry"}),
		recovered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "recovered_pods_total",
			Help: "Pod records found at start, by what recovery made of them (running, notready, removed).",
		}, []string{"outcome"}),
		gcRuns: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "image_gc_runs_total",
			Help: "Collections of unreferenced layers and blobs.",
		}),
		gcRemoved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "image_gc_removed_total",
			Help: "What collections removed, by kind (layer, blob).",
		}, []string{"kind"}),
		live: newLiveCollector(),
	}
	m.reg.MustRegister(m.requests, m.latency, m.podStart, m.pulls, m.pullBytes, m.pullTime,
		m.recovered, m.gcRuns, m.gcRemoved, m.live,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// WatchLive sets where the pods, containers and shims gauges are read at
// each scrape; before it is called they are not reported.
func (m *Metrics) WatchLive(read func() Live) { m.live.set(read) }

// splitMethod turns gRPC's "/runtime.v1.RuntimeService/RunPodSandbox"
// into its service and method.
func splitMethod(full string) (service, method string) {
	service, method, ok := strings.Cut(strings.TrimPrefix(full, "/"), "/")
	if !ok {
		return "unknown", full
	}
	return service, method
}

func (m *Metrics) observeCall(full string, start time.Time, err error) {
	service, method := splitMethod(full)
	m.requests.WithLabelValues(service, method, status.Code(err).String()).Inc()
	m.latency.WithLabelValues(service, method).Observe(time.Since(start).Seconds())
}

// UnaryInterceptor counts and times every unary call.
func (m *Metrics) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := h(ctx, req)
		m.observeCall(info.FullMethod, start, err)
		return resp, err
	}
}

// StreamInterceptor counts and times every stream, to its end.
func (m *Metrics) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		start := time.Now()
		err := h(srv, ss)
		m.observeCall(info.FullMethod, start, err)
		return err
	}
}

// PullFinished records one pull of an image from registry: the layer
// bytes it received and, when it succeeded, how long it took.
func (m *Metrics) PullFinished(registry string, bytes int64, took time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = status.Code(err).String()
	}
	m.pulls.WithLabelValues(registry, result).Inc()
	if bytes > 0 {
		m.pullBytes.WithLabelValues(registry).Add(float64(bytes))
	}
	if err == nil {
		m.pullTime.WithLabelValues(registry).Observe(took.Seconds())
	}
}

// Collected records one collection and what it removed.
func (m *Metrics) Collected(layers, blobs int) {
	m.gcRuns.Inc()
	m.gcRemoved.WithLabelValues("layer").Add(float64(layers))
	m.gcRemoved.WithLabelValues("blob").Add(float64(blobs))
}

// PodStarted records a pod's start latency.
func (m *Metrics) PodStarted(took time.Duration) { m.podStart.Observe(took.Seconds()) }

// Recovered records what recovery made of one pod record.
func (m *Metrics) Recovered(outcome string) { m.recovered.WithLabelValues(outcome).Inc() }

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Listen opens addr for the endpoint. A host left out (":9090") is
// loopback, not every interface: the endpoint has no authentication, so
// reaching it from the network is something to ask for by name.
func Listen(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("metrics.address %q: %w", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, fmt.Errorf("metrics.address %q: %w", addr, err)
	}
	return l, nil
}

// Serve serves /metrics on l until ctx ends.
func (m *Metrics) Serve(ctx context.Context, l net.Listener, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Info("serving metrics", "address", "http://"+l.Addr().String()+"/metrics")
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("metrics endpoint stopped", "error", err)
	}
}
