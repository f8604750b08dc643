package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// otlpReceiver is the other end of the daemon's OTLP/gRPC exporter: it
// keeps every span it is sent.
type otlpReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (r *otlpReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (r *otlpReceiver) inTrace(traceID []byte) []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range r.spans {
		if string(s.GetTraceId()) == string(traceID) {
			out = append(out, s)
		}
	}
	return out
}

// TestTracing runs a pod (with its own netns and CNI) and a container on
// a daemon exporting to an OTLP receiver in the test, the calls carrying
// a W3C trace context as kubelet's tracing sends it. The daemon's spans
// join that trace: one RunPodSandbox span whose parent is the caller's,
// with the pod start's steps as its children (netns, CNI ADD, shim,
// infra, ...), and CreateContainer's image resolve and shim create under
// its span. Stopping the daemon sends what it had buffered.
func TestTracing(t *testing.T) {
	ref := busyboxRef(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	recv := &otlpReceiver{}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, recv)
	go func() { _ = gs.Serve(l) }()
	t.Cleanup(gs.Stop)

	d := StartDaemonWith(t, DaemonOptions{TracingEndpoint: l.Addr().String()})
	pull(t, d, ref)
	traceID, callerSpan := make([]byte, 16), make([]byte, 8)
	_, _ = rand.Read(traceID)
	_, _ = rand.Read(callerSpan)
	traced := func(ctx context.Context) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "traceparent",
			"00-"+hex.EncodeToString(traceID)+"-"+hex.EncodeToString(callerSpan)+"-01")
	}
	ctx := traced(ctxT(t, 2*time.Minute))
	pod := podConfig("traced")
	rp, err := d.RT.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := d.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: rp.PodSandboxId, Config: ctrConfig("c", ref, "sleep", "3600"), SandboxConfig: pod})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.RT.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cc.ContainerId}); err != nil {
		t.Fatal(err)
	}
	removePod(t, d, rp.PodSandboxId)
	d.Stop() // sends the spans still buffered

	spans := recv.inTrace(traceID)
	byName := map[string][]*tracepb.Span{}
	for _, s := range spans {
		byName[s.GetName()] = append(byName[s.GetName()], s)
	}
	children := func(parent *tracepb.Span) []string {
		var names []string
		for _, s := range spans {
			if string(s.GetParentSpanId()) == string(parent.GetSpanId()) {
				names = append(names, s.GetName())
			}
		}
		slices.Sort(names)
		return names
	}
	check := func(call string, wantChildren ...string) {
		t.Helper()
		got := byName[call]
		if len(got) != 1 {
			t.Errorf("%d %s spans in the trace, want 1 (%d spans in all)", len(got), call, len(spans))
			return
		}
		if string(got[0].GetParentSpanId()) != string(callerSpan) {
			t.Errorf("%s's parent is %x, want the caller's span %x", call, got[0].GetParentSpanId(), callerSpan)
		}
		kids := children(got[0])
		t.Logf("%s (%.1f ms): %v", call, float64(got[0].GetEndTimeUnixNano()-got[0].GetStartTimeUnixNano())/1e6, kids)
		for _, w := range wantChildren {
			if !slices.Contains(kids, w) {
				t.Errorf("%s has no %q child: %v", call, w, kids)
			}
		}
	}
	check("runtime.v1.RuntimeService/RunPodSandbox", "record", "netns", "cni-add", "files+shm", "shim", "rootfs", "infra", "save")
	check("runtime.v1.RuntimeService/CreateContainer", "image-resolve", "record+rootfs", "spec", "shim-create", "save")
	check("runtime.v1.RuntimeService/StartContainer")
}
