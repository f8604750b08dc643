package logformat

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, slog.LevelInfo, JSON)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hidden")
	log.Info("pod sandbox ready", "id", "abc", "error", errors.New("a \"quoted\"\nline"))
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d lines, want 1 (debug hidden, newline escaped): %q", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("not JSON: %v: %s", err, lines[0])
	}
	if rec["msg"] != "pod sandbox ready" || rec["id"] != "abc" || rec["level"] != "INFO" || rec["error"] != "a \"quoted\"\nline" {
		t.Errorf("record %v", rec)
	}

	buf.Reset()
	log, err = New(&buf, slog.LevelInfo, Text)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("ready", "id", "abc")
	if got := buf.String(); !strings.Contains(got, "msg=ready id=abc") {
		t.Errorf("text line %q", got)
	}

	if _, err := New(&buf, slog.LevelInfo, "yaml"); err == nil || !strings.Contains(err.Error(), "log_format") {
		t.Errorf("format yaml: error %v, want one naming log_format", err)
	}
}
