package daemon

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/husk-runtime/husk/logformat"
	"github.com/sirupsen/logrus"
	"k8s.io/klog/v2"
)

// TestRouteLibraryLogs: klog and logrus lines come out of the daemon's
// logger, JSON when it is, at its level, with their fields.
func TestRouteLibraryLogs(t *testing.T) {
	var buf bytes.Buffer
	log, err := logformat.New(&buf, slog.LevelInfo, logformat.JSON)
	if err != nil {
		t.Fatal(err)
	}
	routeLibraryLogs(log)
	t.Cleanup(func() { klog.ClearLogger(); logrus.StandardLogger().ReplaceHooks(logrus.LevelHooks{}) })

	klog.InfoS("stream closed", "pod", "p1")
	logrus.WithField("path", "/sys/fs/cgroup/x").Warn("cgroup gone")
	logrus.Debug("below the level")
	klog.Flush()

	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not JSON (%v): %q", err, line)
		}
		recs = append(recs, rec)
	}
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2 (the debug one dropped): %s", len(recs), buf.String())
	}
	if recs[0]["msg"] != "stream closed" || recs[0]["pod"] != "p1" || recs[0]["level"] != "INFO" {
		t.Errorf("klog record %v", recs[0])
	}
	if recs[1]["msg"] != "cgroup gone" || recs[1]["path"] != "/sys/fs/cgroup/x" || recs[1]["level"] != "WARN" {
		t.Errorf("logrus record %v", recs[1])
	}
}
