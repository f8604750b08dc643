package daemon

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestServiceUnit checks dist/systemd/husk.service, which make install
// puts in place: the settings pods depend on (shims outlive a daemon
// restart; husk owns the cgroups below its own), the installed binary,
// and, where systemd-analyze is, that systemd reads it without a word.
func TestServiceUnit(t *testing.T) {
	unit := filepath.Join("..", "dist", "systemd", "husk.service")
	data, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	for _, want := range []string{"KillMode=process", "Delegate=yes", "ExecStart=/usr/local/bin/husk daemon", "WantedBy=multi-user.target"} {
		if !slices.Contains(lines, want) {
			t.Errorf("%s lacks %q", unit, want)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze here to verify the unit with")
	}
	// The copy runs a binary that exists here: verify checks ExecStart.
	husk, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "husk.service")
	if err := os.WriteFile(cp, []byte(strings.ReplaceAll(string(data), "/usr/local/bin/husk", husk)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", cp).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
