package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/husk-runtime/husk/integration/testenv"
)

// TestPodYAMLMemoryEmptyDir: an emptyDir with medium Memory is a tmpfs of
// its sizeLimit, shared by the pod's containers, and `husk pod rm` unmounts
// it with the rest.
func TestPodYAMLMemoryEmptyDir(t *testing.T) {
	d := StartDaemon(t)
	ref := busyboxRef(t)
	h := newHuskCLI(t, d)
	manifest := filepath.Join(d.Dir, "mem.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: v1
kind: Pod
metadata: {name: memvol}
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - {name: cache, emptyDir: {medium: Memory, sizeLimit: 16Mi}}
  containers:
  - name: writer
    image: `+ref+`
    command: [sh, -c, "echo in-memory > /cache/f; sleep 3600"]
    volumeMounts: [{name: cache, mountPath: /cache}]
  - name: reader
    image: `+ref+`
    command: [sleep, "3600"]
    volumeMounts: [{name: cache, mountPath: /cache}]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := h.run("", "pod", "run", "--detach", "-f", manifest)
	if code != 0 {
		t.Fatalf("pod run: exit %d\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(errOut, "medium") {
		t.Errorf("a warning about the medium: %s", errOut)
	}
	mounts := h.ok("exec", "memvol/reader", "--", "cat", "/proc/mounts")
	var line string
	for _, l := range strings.Split(mounts, "\n") {
		if f := strings.Fields(l); len(f) > 3 && f[1] == "/cache" {
			line = l
		}
	}
	if !strings.HasPrefix(line, "tmpfs ") || !strings.Contains(line, "size=16384k") {
		t.Errorf("/cache in the container: %q, want a tmpfs of 16 MiB", line)
	}
	waitFor(t, 30*time.Second, "the writer's file in the reader", func() bool {
		o, _, c := h.run("", "exec", "memvol/reader", "--", "cat", "/cache/f")
		return c == 0 && o == "in-memory\n"
	})
	if ms := testenv.MountsUnder(h.stateDir); len(ms) != 1 {
		t.Errorf("mounts under the CLI's state dir: %v, want the one tmpfs", ms)
	}
	h.ok("pod", "rm", "memvol")
	if ms := testenv.MountsUnder(h.stateDir); len(ms) > 0 {
		t.Errorf("mounts left under the CLI's state dir: %v", ms)
	}
	assertDaemonClean(t, d)
}
