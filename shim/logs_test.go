package shim

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCopyLogCRIFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	w, err := openLog(path)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", maxLogLine+10)
	copyLog(w, "stdout", strings.NewReader("one\n\n"+long+"\nlast-without-newline"))
	copyLog(w, "stderr", strings.NewReader("err\n"))
	w.Close()

	f, _ := os.Open(path)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	type rec struct{ stream, tag, content string }
	var got []rec
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), " ", 4)
		if len(parts) != 4 {
			t.Fatalf("malformed record %q", sc.Text())
		}
		if _, err := time.Parse(time.RFC3339Nano, parts[0]); err != nil {
			t.Fatalf("timestamp %q: %v", parts[0], err)
		}
		got = append(got, rec{parts[1], parts[2], parts[3]})
	}
	want := []rec{
		{"stdout", "F", "one"},
		{"stdout", "F", ""},
		{"stdout", "P", long[:maxLogLine]},
		{"stdout", "F", long[maxLogLine:]},
		{"stdout", "P", "last-without-newline"},
		{"stderr", "F", "err"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("record %d: got %.40v, want %.40v", i, got[i], want[i])
		}
	}
}

func TestExitCode(t *testing.T) {
	// WaitStatus encodes exit code n as n<<8 and signal s as s.
	if c, s := exitCode(3 << 8); c != 3 || s != 0 {
		t.Errorf("exit 3: %d %d", c, s)
	}
	if c, s := exitCode(9); c != 137 || s != 9 {
		t.Errorf("SIGKILL: %d %d", c, s)
	}
}
