package daemon

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/husk-runtime/husk/config"
)

// fakeRuntime writes a script answering --version and features as a
// runtime of that kind would.
func fakeRuntime(t *testing.T, dir, name, version, features string) string {
	p := filepath.Join(dir, name)
	script := "#!/bin/sh\ncase \"$1\" in\n--version) printf '" + version + "' ;;\nfeatures) " + features + " ;;\nesac\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHandlers(t *testing.T) {
	dir := t.TempDir()
	// runc 1.1: features lists rro; spec 1.0.2-dev is older than husk's.
	runc := fakeRuntime(t, dir, "runc", `runc version 1.1.5\nspec: 1.0.2-dev\n`, `echo '{"mountOptions":["ro","rro"]}'`)
	// crun 1.8: no features command.
	crun := fakeRuntime(t, dir, "crun", `crun version 1.8.1\nspec: 1.0.0\n`, `echo "unknown command features" >&2; exit 1`)
	// A runtime as new as husk's spec keeps husk's version.
	newer := fakeRuntime(t, dir, "newer", `newer 9\nspec: 9.0.0\n`, `echo '{}'`)
	cfg := config.Default()
	cfg.State = "/run/x"
	cfg.Runtimes = map[string]config.Runtime{
		"runc":         {Type: config.RuntimeOCI, Path: runc},
		"crun":         {Type: config.RuntimeOCI, Path: crun, Root: "/srv/crun"},
		"newer":        {Type: config.RuntimeOCI, Path: newer},
		"missing":      {Type: config.RuntimeOCI, Path: filepath.Join(dir, "not-installed")},
		"test-handler": {Type: config.RuntimeHusk},
	}
	hs := handlers(cfg, "/bin/husk-oci", slog.New(slog.DiscardHandler))
	if _, ok := hs["missing"]; ok {
		t.Error("a handler whose runtime is not installed is listed")
	}
	if h := hs[""]; h.Runtime.CLI || h.Runtime.Path != "/bin/husk-oci" || h.Runtime.Root != "/run/x/oci" || !h.RecursiveReadOnly || !h.Userns {
		t.Errorf("default handler %+v", h)
	}
	if h := hs["test-handler"]; h.Runtime != hs[""].Runtime || !h.RecursiveReadOnly {
		t.Errorf("test-handler %+v is not husk-oci", h)
	}
	if h := hs["runc"]; !h.Runtime.CLI || h.Runtime.Root != "/run/x/runtimes/runc" || !h.RecursiveReadOnly || h.Userns || h.SpecVersion != "1.0.2-dev" {
		t.Errorf("runc handler %+v", h)
	}
	if h := hs["crun"]; h.Runtime.Root != "/srv/crun" || h.RecursiveReadOnly || h.SpecVersion != "1.0.0" {
		t.Errorf("crun handler %+v", h)
	}
	if h := hs["newer"]; h.SpecVersion != "" {
		t.Errorf("a runtime with a newer spec gets ociVersion %q", h.SpecVersion)
	}
}

func TestOlderSpec(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{{"1.0.0", "1.3.0", true}, {"1.0.2-dev", "1.3.0", true}, {"1.3.0", "1.3.0", false}, {"1.4.0", "1.3.0", false}, {"2.0.0", "1.3.0", false}} {
		if got := olderSpec(tc.a, tc.b); got != tc.want {
			t.Errorf("olderSpec(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}
