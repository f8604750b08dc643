package sandbox

import (
	"log/slog"
	"time"
)

// steps times the stages of a long operation, logged at debug level in one
// line, so an operator can see where a slow pod start spends its time.
type steps struct {
	last  time.Time
	attrs []any
}

func newSteps() *steps { return &steps{last: time.Now()} }

func (s *steps) mark(name string) {
	now := time.Now()
	s.attrs = append(s.attrs, name, now.Sub(s.last).Round(10*time.Microsecond).String())
	s.last = now
}

func (s *steps) log(l *slog.Logger, msg string, id string) {
	l.Debug(msg, append([]any{"id", id}, s.attrs...)...)
}
