package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// crictl runs the crictl that the tools module pins (built into bin/ by
// `make tools`) against the daemon.
func crictl(t *testing.T, d *Daemon, args ...string) string {
	t.Helper()
	bin := filepath.Join(binDir(t), "crictl")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("crictl missing: run `make tools` (%v)", err)
	}
	full := append([]string{"--runtime-endpoint", "unix://" + d.Socket, "--image-endpoint", "unix://" + d.Socket, "--timeout", "60s"}, args...)
	cmd := exec.Command(bin, full...)
	cmd.Env = append(os.Environ(), "CRI_CONFIG_FILE=/dev/null")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("crictl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

func writeJSON(t *testing.T, path string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCrictl drives husk with crictl, as an operator would.
func TestCrictl(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	must := func(out, want, what string) {
		t.Helper()
		if !strings.Contains(out, want) {
			t.Fatalf("%s: output lacks %q:\n%s", what, want, out)
		}
	}
	must(crictl(t, d, "version"), "RuntimeName:  husk", "version")
	info := crictl(t, d, "info")
	must(info, `"RuntimeReady"`, "info")
	must(info, `"NetworkReady"`, "info")
	must(crictl(t, d, "pull", ref), "Image is up to date", "pull")
	must(crictl(t, d, "images"), strings.Split(ref, ":")[0]+":", "images") // host:port/test/busybox
	must(crictl(t, d, "images"), "localhost/husk/pause", "images")
	must(crictl(t, d, "imagefsinfo"), `"usedBytes"`, "imagefsinfo")
	must(crictl(t, d, "inspecti", ref), `"repoDigests"`, "inspecti")

	logDir := filepath.Join(d.Dir, "crictl-logs")
	podJSON := writeJSON(t, filepath.Join(d.Dir, "pod.json"), map[string]any{
		"metadata":      map[string]any{"name": "crictl-pod", "namespace": "default", "uid": "crictl-uid", "attempt": 0},
		"hostname":      "crictl-pod",
		"log_directory": logDir,
		"linux":         map[string]any{},
	})
	ctrJSON := writeJSON(t, filepath.Join(d.Dir, "ctr.json"), map[string]any{
		"metadata": map[string]any{"name": "talker"},
		"image":    map[string]any{"image": ref},
		"command":  []string{"sh", "-c", "echo hello-crictl; exec sleep 3600"},
		"log_path": "talker.log",
		"linux":    map[string]any{},
	})
	podID := strings.TrimSpace(crictl(t, d, "runp", podJSON))
	if len(podID) != 64 {
		t.Fatalf("runp printed %q, want a pod id", podID)
	}
	must(crictl(t, d, "pods"), "crictl-pod", "pods")
	must(crictl(t, d, "inspectp", podID[:12]), `"SANDBOX_READY"`, "inspectp")
	ctrID := strings.TrimSpace(crictl(t, d, "create", podID, ctrJSON, podJSON))
	if len(ctrID) != 64 {
		t.Fatalf("create printed %q, want a container id", ctrID)
	}
	crictl(t, d, "start", ctrID[:12])
	must(crictl(t, d, "ps"), "talker", "ps")
	must(crictl(t, d, "inspect", ctrID), `"CONTAINER_RUNNING"`, "inspect")
	waitFor(t, 10e9, "container log", func() bool {
		b, _ := os.ReadFile(filepath.Join(logDir, "talker.log"))
		return strings.Contains(string(b), "hello-crictl")
	})
	must(crictl(t, d, "logs", ctrID), "hello-crictl", "logs")
	must(crictl(t, d, "exec", ctrID, "sh", "-c", "echo from-exec"), "from-exec", "exec (streaming)")
	must(crictl(t, d, "exec", "--sync", ctrID, "sh", "-c", "echo from-exec-sync"), "from-exec-sync", "exec --sync")
	must(crictl(t, d, "stats", "--id", ctrID), "talker", "stats")
	must(crictl(t, d, "statsp", "--id", podID), "crictl-pod", "statsp")
	crictl(t, d, "stop", "--timeout", "1", ctrID)
	must(crictl(t, d, "ps", "-a"), "Exited", "ps -a")
	crictl(t, d, "rm", ctrID)
	crictl(t, d, "stopp", podID)
	crictl(t, d, "rmp", podID)
	if out := crictl(t, d, "pods", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("pods after rmp: %q", out)
	}
	crictl(t, d, "rmi", ref)
	if out := crictl(t, d, "images", "-q"); strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("images after rmi (want only the pause): %q", out)
	}
	assertPodGone(t, d, podID)
	assertDaemonClean(t, d)
}
