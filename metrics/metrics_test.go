package metrics

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestRecording(t *testing.T) {
	m := New()
	call := m.UnaryInterceptor()
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/RunPodSandbox"}
	ok := func(context.Context, any) (any, error) { return "ok", nil }
	notFound := func(context.Context, any) (any, error) { return nil, status.Error(codes.NotFound, "no such pod") }
	for _, h := range []grpc.UnaryHandler{ok, ok, notFound} {
		_, _ = call(context.Background(), nil, info, h)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("runtime.v1.RuntimeService", "RunPodSandbox", "OK")); got != 2 {
		t.Errorf("OK calls %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("runtime.v1.RuntimeService", "RunPodSandbox", "NotFound")); got != 1 {
		t.Errorf("NotFound calls %v, want 1", got)
	}
	if n := testutil.CollectAndCount(m.latency); n != 1 {
		t.Errorf("%d latency series, want 1 (one method)", n)
	}

	m.PullFinished("registry.example:5000", 1000, 2*time.Second, nil)
	m.PullFinished("registry.example:5000", 10, time.Second, status.Error(codes.NotFound, "manifest unknown"))
	m.PullFinished("registry.example:5000", 0, time.Second, errors.New("unclassified"))
	if got := testutil.ToFloat64(m.pullBytes.WithLabelValues("registry.example:5000")); got != 1010 {
		t.Errorf("pull bytes %v, want 1010 (failed pulls' bytes count too)", got)
	}
	for result, want := range map[string]float64{"ok": 1, "NotFound": 1, "Unknown": 1} {
		if got := testutil.ToFloat64(m.pulls.WithLabelValues("registry.example:5000", result)); got != want {
			t.Errorf("pulls %s: %v, want %v", result, got, want)
		}
	}
	m.Collected(2, 3)
	m.Collected(0, 0)
	if runs, layers := testutil.ToFloat64(m.gcRuns), testutil.ToFloat64(m.gcRemoved.WithLabelValues("layer")); runs != 2 || layers != 2 {
		t.Errorf("gc runs %v layers %v, want 2 and 2", runs, layers)
	}

	// The gauges come from WatchLive at each scrape; an HTTP scrape shows
	// them with the rest, the Go runtime's included.
	m.WatchLive(func() Live {
		return Live{Pods: map[string]int{"ready": 2}, Containers: map[string]int{"running": 3, "exited": 1}, Shims: 2}
	})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	_, _ = io.Copy(&body, resp.Body)
	for _, want := range []string{
		`husk_pods{state="ready"} 2`, `husk_containers{state="exited"} 1`, `husk_shims 2`,
		`husk_grpc_requests_total{code="OK",method="RunPodSandbox",service="runtime.v1.RuntimeService"} 2`,
		`husk_image_pull_duration_seconds_count{registry="registry.example:5000"} 1`,
		"go_goroutines ", "process_resident_memory_bytes ",
	} {
		if !strings.Contains(body.String(), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

func TestListenDefaultsToLoopback(t *testing.T) {
	l, err := Listen(":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.Addr().String(); !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("listening on %s, want loopback", got)
	}
	if _, err := Listen("nonsense"); err == nil || !strings.Contains(err.Error(), "metrics.address") {
		t.Errorf("bad address: %v, want an error naming metrics.address", err)
	}
}
