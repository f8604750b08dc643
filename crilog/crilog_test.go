package crilog

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

const sampleLog = `2026-01-02T10:00:00.000000001Z stdout F first
2026-01-02T10:00:01.000000000Z stderr P warn-
2026-01-02T10:00:01.500000000Z stdout P long-
2026-01-02T10:00:02.000000000Z stderr F ing
2026-01-02T10:00:03.000000000Z stdout F line
2026-01-02T10:00:04.000000000Z stdout F 
2026-01-02T10:00:05.000000000Z stdout F last
`

func writeLog(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStreamLog(t *testing.T) {
	p := writeLog(t, sampleLog)
	exited := func() bool { return true }
	cases := []struct {
		name           string
		opts           Options
		stdout, stderr string
	}{
		{"all, partial records joined per stream", Options{Tail: -1}, "first\nlong-line\n\nlast\n", "warn-ing\n"},
		{"tail counts joined lines", Options{Tail: 2}, "\nlast\n", ""},
		{"tail 0", Options{Tail: 0}, "", ""},
		{"since", Options{Tail: -1, Since: time.Date(2026, 1, 2, 10, 0, 2, 0, time.UTC)}, "long-line\n\nlast\n", "warn-ing\n"},
		{"timestamps and prefix", Options{Tail: 1, Timestamps: true, Prefix: "[c] "}, "[c] 2026-01-02T10:00:05Z last\n", ""},
	}
	for _, tc := range cases {
		var out, errOut bytes.Buffer
		if err := Stream(context.Background(), p, tc.opts, &out, &errOut, exited); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if out.String() != tc.stdout || errOut.String() != tc.stderr {
			t.Errorf("%s: stdout %q stderr %q, want %q %q", tc.name, out.String(), errOut.String(), tc.stdout, tc.stderr)
		}
	}

	if err := Stream(context.Background(), writeLog(t, "garbage\n"), Options{Tail: -1}, &bytes.Buffer{}, &bytes.Buffer{}, exited); err == nil {
		t.Error("a file that is not a CRI log gave no error")
	}
}

// TestStreamLogFollow appends to a log while it is followed, rotates it
// (as ReopenContainerLog does), and ends the follow when the container is
// reported exited: every line once, in order.
func TestStreamLogFollow(t *testing.T) {
	p := writeLog(t, "2026-01-02T10:00:00Z stdout F one\n")
	var gone atomic.Bool
	done := make(chan struct{})
	var out bytes.Buffer
	go func() {
		defer close(done)
		_ = Stream(context.Background(), p, Options{Follow: true, Tail: -1}, &out, &out, gone.Load)
	}()
	appendLine := func(path, s string) {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	// A record written in two pieces is read once complete.
	appendLine(p, "2026-01-02T10:00:01Z stdout F t")
	time.Sleep(200 * time.Millisecond)
	appendLine(p, "wo\n")
	time.Sleep(200 * time.Millisecond)
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	appendLine(p, "2026-01-02T10:00:02Z stdout F three\n")
	time.Sleep(400 * time.Millisecond)
	gone.Store(true)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end after the container exited")
	}
	if out.String() != "one\ntwo\nthree\n" {
		t.Errorf("followed %q", out.String())
	}
}
