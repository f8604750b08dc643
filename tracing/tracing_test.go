package tracing

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"
)

// Off, nothing is set up: the global provider stays the no-op one and the
// gRPC server gets no stats handler.
func TestOff(t *testing.T) {
	shutdown, err := Start(context.Background(), Config{}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ServerOption(Config{}) != nil {
		t.Error("a stats handler with tracing off")
	}
	if _, ok := otel.GetTracerProvider().(noop.TracerProvider); ok {
		return
	}
	// The default global provider delegates until one is set; its
	// spans must not be recording.
	_, span := otel.Tracer("t").Start(context.Background(), "s")
	if span.IsRecording() {
		t.Error("spans record with tracing off")
	}
}

func TestOn(t *testing.T) {
	shutdown, err := Start(context.Background(), Config{Endpoint: "127.0.0.1:1", Insecure: true, SamplingRatio: 1}, "test")
	if err != nil {
		t.Fatal(err) // the exporter connects lazily: no receiver is fine
	}
	_, span := otel.Tracer("t").Start(context.Background(), "s")
	if !span.IsRecording() {
		t.Error("spans do not record with tracing on")
	}
	span.End()
	if ServerOption(Config{Endpoint: "127.0.0.1:1"}) == nil {
		t.Error("no stats handler with tracing on")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond) // nothing listens
	defer cancel()
	_ = shutdown(ctx)
}
