// Package tracing exports OpenTelemetry spans of the daemon's gRPC calls
// and their steps over OTLP/gRPC, when tracing.endpoint is set. Off, the
// global tracer provider stays OpenTelemetry's no-op one, so the spans
// the code makes cost next to nothing.
//
// A call's trace context comes from its gRPC metadata (W3C traceparent,
// what kubelet's tracing sends), so a RunPodSandbox joins kubelet's trace.
package tracing

import (
	"context"
	"fmt"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"google.golang.org/grpc"
)

// Config is the [tracing] table.
type Config struct {
	Endpoint string // host:port of an OTLP/gRPC receiver; "" is off
	Insecure bool   // plaintext, no TLS (a collector on the node)
	// SamplingRatio is the share of new traces kept (0 to 1); a call
	// that comes with a trace context follows its sampled flag.
	SamplingRatio float64
}

// Start sets up the exporter and the global tracer provider and
// propagator. The returned shutdown sends what is buffered; with tracing
// off it does nothing and ServerOption is nil.
func Start(ctx context.Context, cfg Config, version string) (shutdown func(context.Context) error, err error) {
	if cfg.Endpoint == "" {
		return func(context.Context) error { return nil }, nil
	}
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.Endpoint)}
	if cfg.Insecure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	// The exporter connects lazily: a receiver not up yet is no reason
	// for the daemon not to start.
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing.endpoint %q: %w", cfg.Endpoint, err)
	}
	res := resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName("husk"), semconv.ServiceVersion(version))
	// Spans go out in batches (every 5 s, the SDK's default) and at
	// shutdown.
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SamplingRatio))),
	)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return tp.Shutdown, nil
}

// ServerOption instruments a gRPC server: one span per call, in the
// trace its metadata names. Nil when tracing is off.
func ServerOption(cfg Config) grpc.ServerOption {
	if cfg.Endpoint == "" {
		return nil
	}
	return grpc.StatsHandler(otelgrpc.NewServerHandler())
}
