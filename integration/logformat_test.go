package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestJSONLogs runs a daemon with log_format = "json" at debug level
// through a pull, a pod with a container, an exec, a refused request, a
// removal and a restart (recovery), and checks that every line the daemon
// and the pod's shim wrote is one JSON object with slog's keys.
func TestJSONLogs(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemonWith(t, DaemonOptions{LogFormat: "json"})
	pull(t, d, ref)
	pod := podConfig("jsonlogs")
	podID := runPod(t, d, pod)
	ctr := runContainer(t, d, podID, pod, ctrConfig("c", ref, "sh", "-c", "echo hi; exec sleep 3600"))
	ctx := ctxT(t, time.Minute)
	if ex, err := d.RT.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: ctr, Cmd: []string{"true"}, Timeout: 10}); err != nil || ex.ExitCode != 0 {
		t.Fatalf("exec: %v, exit %d", err, ex.GetExitCode())
	}
	// A refused request logs too (the interceptor's error line).
	if _, err := d.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("CreateContainer without config: %v, want InvalidArgument", err)
	}
	shimLog, err := os.ReadFile(filepath.Join(d.Root, "pods", podID, "shim.log"))
	if err != nil {
		t.Fatal(err)
	}
	removePod(t, d, podID)
	d.Stop()
	d.Start()

	daemonLines := checkJSONLines(t, "daemon.log", d.Log())
	if !slicesContainMsg(daemonLines, "pod sandbox ready") {
		t.Errorf("daemon log has no \"pod sandbox ready\" record among %d", len(daemonLines))
	}
	if len(checkJSONLines(t, "shim.log", string(shimLog))) == 0 {
		t.Error("the shim logged nothing at debug level")
	}
}

// checkJSONLines parses each line of log as a JSON object holding time,
// level and msg, and returns the records.
func checkJSONLines(t *testing.T, name, log string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for i, line := range strings.Split(strings.TrimSuffix(log, "\n"), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("%s line %d is not JSON (%v): %s", name, i+1, err, line)
			continue
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("%s line %d has no %q: %s", name, i+1, k, line)
			}
		}
		recs = append(recs, rec)
	}
	t.Logf("%s: %d JSON lines", name, len(recs))
	return recs
}

func slicesContainMsg(recs []map[string]any, msg string) bool {
	for _, r := range recs {
		if r["msg"] == msg {
			return true
		}
	}
	return false
}
