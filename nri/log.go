package nri

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	nrilog "github.com/containerd/nri/pkg/log"
)

// logger carries NRI's own messages into the daemon's log, as component
// "nri" (otherwise they reach it through logrus, without one).
type logger struct{ log *slog.Logger }

func newLogger(log *slog.Logger) nrilog.Logger { return logger{log.With("component", "nri")} }

func (l logger) Debugf(ctx context.Context, format string, args ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, args...))
}

func (l logger) Infof(ctx context.Context, format string, args ...any) {
	l.log.InfoContext(ctx, fmt.Sprintf(format, args...))
}

func (l logger) Warnf(ctx context.Context, format string, args ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, args...))
}

// Errorf: NRI reports the WASM plugin host husk leaves out on purpose
// (nri_no_wasm) as an error at every start; it is no fault, so debug.
func (l logger) Errorf(ctx context.Context, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.Contains(msg, "WASM support is disabled") {
		l.log.DebugContext(ctx, msg)
		return
	}
	l.log.ErrorContext(ctx, msg)
}
