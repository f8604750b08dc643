// Package crilog reads the CRI log files runtimes write for kubelet
// (`<RFC3339Nano> <stream> <P|F> <msg>` records, a long line split into
// partial records): the whole file or its tail, joined back into lines,
// and followed as it grows and rotates.
package crilog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// Options say what Stream prints.
type Options struct {
	Follow     bool
	Tail       int // the last Tail lines; -1: all
	Since      time.Time
	Timestamps bool
	Prefix     string // put before every line (pod run names the container)
}

// logEntry is one complete line of a CRI log: the runtime writes a line
// longer than its buffer as partial (P) records ending with a full (F) one.
type logEntry struct {
	ts     time.Time
	stderr bool
	msg    []byte
}

// criLogParser turns CRI log records (`<RFC3339Nano> <stream> <P|F> <msg>`)
// into entries, joining partial records per stream.
type criLogParser struct {
	partial [2][]byte
}

var errBadLogLine = errors.New("not a CRI log record")

func (p *criLogParser) parse(line []byte) (logEntry, bool, error) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	f := bytes.SplitN(line, []byte(" "), 4)
	if len(f) < 3 {
		return logEntry{}, false, errBadLogLine
	}
	ts, err := time.Parse(time.RFC3339Nano, string(f[0]))
	if err != nil {
		return logEntry{}, false, fmt.Errorf("%w: timestamp %q: %v", errBadLogLine, f[0], err)
	}
	var s int
	switch string(f[1]) {
	case "stdout":
	case "stderr":
		s = 1
	default:
		return logEntry{}, false, fmt.Errorf("%w: stream %q", errBadLogLine, f[1])
	}
	var msg []byte
	if len(f) == 4 {
		msg = f[3]
	}
	switch string(f[2]) {
	case "P":
		p.partial[s] = append(p.partial[s], msg...)
		return logEntry{}, false, nil
	case "F":
	default:
		return logEntry{}, false, fmt.Errorf("%w: tag %q", errBadLogLine, f[2])
	}
	full := append(p.partial[s], msg...)
	p.partial[s] = nil
	return logEntry{ts: ts, stderr: s == 1, msg: full}, true, nil
}

func writeEntry(e logEntry, opts Options, stdout, stderr io.Writer) error {
	if !opts.Since.IsZero() && e.ts.Before(opts.Since) {
		return nil
	}
	var b bytes.Buffer
	b.WriteString(opts.Prefix)
	if opts.Timestamps {
		b.WriteString(e.ts.Format(time.RFC3339Nano))
		b.WriteByte(' ')
	}
	b.Write(e.msg)
	b.WriteByte('\n')
	w := stdout
	if e.stderr {
		w = stderr
	}
	_, err := w.Write(b.Bytes())
	return err
}

// Stream prints the CRI log at path. With follow it keeps reading as
// the file grows, reopens it when rotated (ReopenContainerLog), and
// returns once exited reports the container gone and the file is drained,
// or when ctx ends.
func Stream(ctx context.Context, path string, opts Options, stdout, stderr io.Writer, exited func() bool) error {
	f, err := openLog(ctx, path, opts.Follow, exited)
	if err != nil || f == nil {
		return err
	}
	defer func() { f.Close() }()
	var p criLogParser
	rd := bufio.NewReader(f)

	if opts.Tail >= 0 {
		var entries []logEntry
		for {
			line, err := rd.ReadBytes('\n')
			if err != nil {
				// A trailing record without its newline is still being
				// written: read it again once complete.
				if len(line) > 0 {
					if _, serr := f.Seek(-int64(len(line)), io.SeekCurrent); serr != nil {
						return fmt.Errorf("read %s: %w", path, serr)
					}
					rd.Reset(f)
				}
				break
			}
			e, ok, perr := p.parse(line)
			if perr != nil {
				return fmt.Errorf("%s: %w", path, perr)
			}
			if ok && (opts.Since.IsZero() || !e.ts.Before(opts.Since)) {
				entries = append(entries, e)
			}
		}
		if len(entries) > opts.Tail {
			entries = entries[len(entries)-opts.Tail:]
		}
		for _, e := range entries {
			if err := writeEntry(e, opts, stdout, stderr); err != nil {
				return err
			}
		}
	}

	var pending []byte
	lastCheck := time.Now()
	done := false
	for {
		line, err := rd.ReadBytes('\n')
		pending = append(pending, line...)
		if err == nil {
			e, ok, perr := p.parse(pending)
			pending = pending[:0]
			if perr != nil {
				return fmt.Errorf("%s: %w", path, perr)
			}
			if ok {
				if werr := writeEntry(e, opts, stdout, stderr); werr != nil {
					return werr
				}
			}
			continue
		}
		if !errors.Is(err, io.EOF) {
			return fmt.Errorf("read %s: %w", path, err)
		}
		if !opts.Follow || done {
			return nil
		}
		// At the end of the file: it may have been rotated away, and the
		// container may be gone. One more pass after it is gone picks up
		// what it wrote last.
		if rotated(f, path) {
			nf, oerr := os.Open(path)
			if oerr == nil {
				f.Close()
				f = nf
				rd.Reset(f)
				pending = pending[:0]
				continue
			}
		}
		if time.Since(lastCheck) > 500*time.Millisecond {
			lastCheck = time.Now()
			if exited() {
				done = true
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// openLog opens path; when following, a log not yet created is waited for.
func openLog(ctx context.Context, path string, follow bool, exited func() bool) (*os.File, error) {
	for {
		f, err := os.Open(path)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, os.ErrNotExist) || !follow {
			return nil, fmt.Errorf("open log: %w", err)
		}
		if exited() {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func rotated(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	if err1 != nil || err2 != nil {
		return false
	}
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && (sa.Ino != sb.Ino || sa.Dev != sb.Dev)
}

// Tail returns the last n complete lines of a CRI log, for error
// reports (an init container that failed).
func Tail(path string, n int) string {
	var out bytes.Buffer
	// Both streams go to one buffer, in order.
	_ = Stream(context.Background(), path, Options{Tail: n}, &out, &out, func() bool { return true })
	return out.String()
}
