package podrun

// The probe and hook handlers against real servers on loopback: gRPC's
// health service, HTTP, TCP; and sleep.

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/husk-runtime/husk/kubepod"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func port(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return int32(n)
}

func TestHandlers(t *testing.T) {
	r := &Runner{Timeout: 5 * time.Second}
	ctx := context.Background()

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	hs.SetServingStatus("web", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("db", healthpb.HealthCheckResponse_NOT_SERVING)
	gp := port(t, lis.Addr().String())

	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/ok" || req.Header.Get("X-Probe") != "1" {
			http.Error(w, "no", http.StatusServiceUnavailable)
		}
	}))
	defer web.Close()
	hp := port(t, web.Listener.Addr().String())

	for _, tc := range []struct {
		name string
		h    kubepod.Handler
		fail string // "" for success, else part of the error
	}{
		{"grpc serving", kubepod.Handler{GRPC: &kubepod.GRPCProbe{Port: gp, Service: "web"}}, ""},
		{"grpc not serving", kubepod.Handler{GRPC: &kubepod.GRPCProbe{Port: gp, Service: "db"}}, "NOT_SERVING"},
		{"grpc unknown service", kubepod.Handler{GRPC: &kubepod.GRPCProbe{Port: gp, Service: "nope"}}, "NotFound"},
		{"http ok", kubepod.Handler{HTTPGet: &kubepod.HTTPGetProbe{Scheme: "http", Port: hp, Path: "/ok", Headers: map[string]string{"X-Probe": "1"}}}, ""},
		{"http 503", kubepod.Handler{HTTPGet: &kubepod.HTTPGetProbe{Scheme: "http", Port: hp, Path: "/ok"}}, "503"},
		{"tcp", kubepod.Handler{TCPPort: hp}, ""},
		{"sleep", kubepod.Handler{Sleep: 50 * time.Millisecond}, ""},
	} {
		err := r.runHandler(ctx, "c", &tc.h, "", time.Second)
		switch {
		case tc.fail == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.fail != "" && (err == nil || !strings.Contains(err.Error(), tc.fail)):
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.fail)
		}
	}
	// A sleep is cut at the timeout (a preStop's grace period).
	began := time.Now()
	if err := r.runHandler(ctx, "c", &kubepod.Handler{Sleep: time.Hour}, "", 100*time.Millisecond); err != nil || time.Since(began) > 10*time.Second {
		t.Errorf("sleep of an hour with a 100ms timeout: %v after %s", err, time.Since(began))
	}
}
