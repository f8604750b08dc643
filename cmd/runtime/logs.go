package main

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

	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func logsCmd() *cobra.Command {
	var opts logOptions
	var since time.Duration
	var tail int
	var previous bool
	cmd := &cobra.Command{
		Use:   "logs [flags] CONTAINER",
		Short: "Print a container's log (both streams, from its CRI log file)",
		Long: `Print a container's log from the CRI log file its runtime writes
(ContainerStatus.LogPath): stdout lines to stdout, stderr lines to stderr,
lines the runtime split joined again. CONTAINER is an ID, a unique ID
prefix, a name or pod/name; the latest restart of a name is shown.`,
		Example: `  husk logs web
  husk logs -f --tail 20 web-pod/server
  husk logs --since 5m --timestamps 4f2a
  husk logs --previous server     # the restart before the current one`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := dial(10 * time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := cmd.Context()
			ct, err := c.findContainer(ctx, args[0])
			if err != nil {
				return err
			}
			st, err := c.containerStatus(ctx, ct.Id)
			if err != nil {
				return err
			}
			path := st.GetLogPath()
			if previous {
				prev, err := c.previousAttempt(ctx, ct)
				if err != nil {
					return err
				}
				if st, err = c.containerStatus(ctx, prev.Id); err != nil {
					return err
				}
				path = st.GetLogPath()
				opts.follow = false
			}
			if path == "" {
				return fmt.Errorf("container %s has no log path (created without a log directory)", shortID(ct.Id))
			}
			opts.tail = tail
			if since > 0 {
				opts.since = time.Now().Add(-since)
			}
			id := st.GetId()
			exited := func() bool {
				s, err := c.containerStatus(ctx, id)
				return err != nil || s.State == runtimeapi.ContainerState_CONTAINER_EXITED
			}
			return streamLog(ctx, path, opts, os.Stdout, os.Stderr, exited)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.follow, "follow", "f", false, "follow the log until the container exits")
	f.IntVar(&tail, "tail", -1, "print only the last N lines (-1: all)")
	f.DurationVar(&since, "since", 0, "print only lines newer than this, e.g. 10s or 5m")
	f.BoolVarP(&opts.timestamps, "timestamps", "t", false, "print each line's timestamp")
	f.BoolVarP(&previous, "previous", "p", false, "print the log of the restart before the current one")
	return cmd
}

func (c *criClient) containerStatus(ctx context.Context, id string) (*runtimeapi.ContainerStatus, error) {
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.rt.ContainerStatus(cctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		return nil, rpcErr(err, "status of container %s", shortID(id))
	}
	return resp.Status, nil
}

// previousAttempt is the container of the same name and pod with the
// highest attempt below ct's.
func (c *criClient) previousAttempt(ctx context.Context, ct *runtimeapi.Container) (*runtimeapi.Container, error) {
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.rt.ListContainers(cctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: ct.PodSandboxId}})
	if err != nil {
		return nil, rpcErr(err, "list containers of pod %s", shortID(ct.PodSandboxId))
	}
	var best *runtimeapi.Container
	for _, o := range resp.Containers {
		if o.GetMetadata().GetName() != ct.GetMetadata().GetName() || o.GetMetadata().GetAttempt() >= ct.GetMetadata().GetAttempt() {
			continue
		}
		if best == nil || o.GetMetadata().GetAttempt() > best.GetMetadata().GetAttempt() {
			best = o
		}
	}
	if best == nil {
		return nil, fmt.Errorf("container %s (%s, restart %d) has no previous restart left", shortID(ct.Id), ct.GetMetadata().GetName(), ct.GetMetadata().GetAttempt())
	}
	return best, nil
}

type logOptions struct {
	follow     bool
	tail       int // -1: all
	since      time.Time
	timestamps bool
	prefix     string // put before every line (pod run names the container)
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

func writeEntry(e logEntry, opts logOptions, stdout, stderr io.Writer) error {
	if !opts.since.IsZero() && e.ts.Before(opts.since) {
		return nil
	}
	var b bytes.Buffer
	b.WriteString(opts.prefix)
	if opts.timestamps {
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

// streamLog prints the CRI log at path. With follow it keeps reading as
// the file grows, reopens it when rotated (ReopenContainerLog), and
// returns once exited reports the container gone and the file is drained,
// or when ctx ends.
func streamLog(ctx context.Context, path string, opts logOptions, stdout, stderr io.Writer, exited func() bool) error {
	f, err := openLog(ctx, path, opts.follow, exited)
	if err != nil || f == nil {
		return err
	}
	defer func() { f.Close() }()
	var p criLogParser
	rd := bufio.NewReader(f)

	if opts.tail >= 0 {
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
			if ok && (opts.since.IsZero() || !e.ts.Before(opts.since)) {
				entries = append(entries, e)
			}
		}
		if len(entries) > opts.tail {
			entries = entries[len(entries)-opts.tail:]
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
		if !opts.follow || done {
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

// tailLines returns the last n complete lines of a CRI log, for error
// reports (an init container that failed).
func tailLines(path string, n int) string {
	var out bytes.Buffer
	// Both streams go to one buffer, in order.
	_ = streamLog(context.Background(), path, logOptions{tail: n}, &out, &out, func() bool { return true })
	return out.String()
}
