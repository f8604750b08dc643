package daemon

import (
	"context"
	"io"
	"log/slog"

	"github.com/sirupsen/logrus"
	"k8s.io/klog/v2"
)

// routeLibraryLogs sends what the libraries the daemon links log through
// log, so that every line the daemon writes has the one format
// log_format asks for (a JSON collector breaks on a stray text line).
// Go's own log package goes there through slog.SetDefault; two libraries
// bring their own loggers: klog (k8s.io/cri-streaming and apimachinery,
// on a failed stream) and logrus (opencontainers/cgroups, docker's
// config file reader).
func routeLibraryLogs(log *slog.Logger) {
	klog.SetSlogLogger(log)
	logrus.SetOutput(io.Discard)
	logrus.SetLevel(logrusLevel(log))
	logrus.StandardLogger().ReplaceHooks(logrus.LevelHooks{})
	logrus.AddHook(slogHook{log})
}

// logrusLevel is the most verbose logrus level log lets through, so that
// logrus does not build entries the handler drops.
func logrusLevel(log *slog.Logger) logrus.Level {
	ctx := context.Background()
	switch {
	case log.Enabled(ctx, slog.LevelDebug):
		return logrus.DebugLevel
	case log.Enabled(ctx, slog.LevelInfo):
		return logrus.InfoLevel
	case log.Enabled(ctx, slog.LevelWarn):
		return logrus.WarnLevel
	}
	return logrus.ErrorLevel
}

// slogHook re-logs logrus entries through slog at the matching level,
// with their fields as attributes.
type slogHook struct{ log *slog.Logger }

func (slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h slogHook) Fire(e *logrus.Entry) error {
	level := slog.LevelDebug
	switch {
	case e.Level <= logrus.ErrorLevel: // panic, fatal, error
		level = slog.LevelError
	case e.Level == logrus.WarnLevel:
		level = slog.LevelWarn
	case e.Level == logrus.InfoLevel:
		level = slog.LevelInfo
	}
	ctx := e.Context
	if ctx == nil {
		ctx = context.Background()
	}
	if !h.log.Enabled(ctx, level) {
		return nil
	}
	attrs := make([]slog.Attr, 0, len(e.Data))
	for k, v := range e.Data {
		attrs = append(attrs, slog.Any(k, v))
	}
	h.log.LogAttrs(ctx, level, e.Message, attrs...)
	return nil
}
