package sandbox

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// tracer makes the spans of the manager's steps: no-ops unless the daemon
// set up tracing (tracing.endpoint).
var tracer = otel.Tracer("github.com/husk-runtime/husk/sandbox")

// steps times the stages of a long operation, logged at debug level in one
// line, so an operator can see where a slow pod start spends its time, and
// each stage is a child span of the call's span when tracing is on.
type steps struct {
	ctx   context.Context
	last  time.Time
	attrs []any
}

func newSteps(ctx context.Context) *steps { return &steps{ctx: ctx, last: time.Now()} }

// mark ends the stage called name, begun at the previous mark. Its span
// is made after the fact with both times: a stage's name is known at its
// end, and nothing inside it needs the span.
func (s *steps) mark(name string) {
	now := time.Now()
	s.attrs = append(s.attrs, name, now.Sub(s.last).Round(10*time.Microsecond).String())
	_, span := tracer.Start(s.ctx, name, trace.WithTimestamp(s.last))
	span.End(trace.WithTimestamp(now))
	s.last = now
}

func (s *steps) log(l *slog.Logger, msg string, id string) {
	l.Debug(msg, append([]any{"id", id}, s.attrs...)...)
}
