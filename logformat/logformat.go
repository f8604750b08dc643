// Package logformat builds the slog logger of husk's daemon and shims in
// one of the formats an operator picks with log_format: "text" (slog's
// key=value lines, the default) or "json" (one JSON object per line, for
// log collectors, as containerd's and CRI-O's JSON logs).
package logformat

import (
	"fmt"
	"io"
	"log/slog"
)

// The formats log_format takes.
const (
	Text = "text"
	JSON = "json"
)

// Check says whether format is one New takes; the error names the
// config key, for config validation.
func Check(format string) error {
	switch format {
	case Text, JSON:
		return nil
	}
	return fmt.Errorf("log_format %q: want %q or %q", format, Text, JSON)
}

// New returns a logger writing to w at level and above in format.
func New(w io.Writer, level slog.Leveler, format string) (*slog.Logger, error) {
	if err := Check(format); err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: level}
	if format == JSON {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
