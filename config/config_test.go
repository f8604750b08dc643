package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/husk-runtime/husk/layout"
)

func TestDefaultParses(t *testing.T) {
	c := Default()
	if c.Root != "/var/lib/husk" || c.Socket != "/run/husk/husk.sock" || !c.CNI.DefaultNetwork || c.LogFormat != "text" || c.Tracing.SamplingRatio != 1 || c.Metrics.Address != "" || c.Tracing.Endpoint != "" {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	// Packages that default their paths without a config (network, for
	// one) take layout.Default's: it must be the embedded config's.
	if c.Root != layout.Default.Root || c.State != layout.Default.State {
		t.Errorf("embedded root %s and state %s, layout.Default %+v", c.Root, c.State, layout.Default)
	}
}

func TestLoadOverrides(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(p, []byte("root = \"/tmp/r\"\n[cni]\nsubnet = \"10.1.0.0/24\"\n"), 0o644)
	c, err := Load(p, true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Root != "/tmp/r" || c.CNI.Subnet != "10.1.0.0/24" || c.State != "/run/husk" {
		t.Fatalf("overrides not applied: %+v", c)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.toml"), true); err == nil {
		t.Fatal("explicit missing file accepted")
	}
	if _, err := Load(filepath.Join(dir, "missing.toml"), false); err != nil {
		t.Fatalf("implicit missing file: %v", err)
	}
	p := filepath.Join(dir, "bad.toml")
	os.WriteFile(p, []byte("roots = \"/x\"\n"), 0o644)
	if _, err := Load(p, true); err == nil || !strings.Contains(err.Error(), "roots") {
		t.Fatalf("unknown key not named: %v", err)
	}
	os.WriteFile(p, []byte("root = \"rel\"\n"), 0o644)
	if _, err := Load(p, true); err == nil || !strings.Contains(err.Error(), "root") {
		t.Fatalf("relative root accepted: %v", err)
	}
	os.WriteFile(p, []byte("[tracing]\nsampling_ratio = 2.0\n"), 0o644)
	if _, err := Load(p, true); err == nil || !strings.Contains(err.Error(), "tracing.sampling_ratio") {
		t.Fatalf("sampling ratio 2 not refused by name: %v", err)
	}
	for _, c := range []struct{ toml, key string }{
		{"[nri]\nsocket_path = \"nri.sock\"\n", "nri.socket_path"},
		{"[nri]\nrequest_timeout_seconds = 0\n", "nri.request_timeout_seconds"},
	} {
		os.WriteFile(p, []byte(c.toml), 0o644)
		if _, err := Load(p, true); err == nil || !strings.Contains(err.Error(), c.key) {
			t.Fatalf("%q not refused by name: %v", c.toml, err)
		}
	}
	os.WriteFile(p, []byte("cgroup_driver = \"systemd\"\n"), 0o644)
	if c, err := Load(p, true); err != nil || c.CgroupDriver != CgroupSystemd {
		t.Fatalf("cgroup_driver systemd: %v", err)
	}
	os.WriteFile(p, []byte("cgroup_driver = \"cgroupv1\"\n"), 0o644)
	if _, err := Load(p, true); err == nil || !strings.Contains(err.Error(), "cgroup_driver") {
		t.Fatalf("an unknown cgroup driver not refused by name: %v", err)
	}
	// Off, its other keys are not looked at.
	os.WriteFile(p, []byte("[nri]\ndisable = true\nsocket_path = \"\"\n"), 0o644)
	if _, err := Load(p, true); err != nil {
		t.Fatalf("disabled NRI with an empty socket: %v", err)
	}
	os.WriteFile(p, []byte("log_format = \"logfmt\"\n"), 0o644)
	if _, err := Load(p, true); err == nil || !strings.Contains(err.Error(), "log_format") {
		t.Fatalf("unknown log_format not named: %v", err)
	}
}

func TestRegistryAuthFile(t *testing.T) {
	if got := Default().Registry.AuthFile; got != "/etc/husk/auth.json" {
		t.Errorf("default registry.auth_file = %q, want /etc/husk/auth.json", got)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "c.toml")
	for _, tc := range []struct {
		body, want, errHas string
	}{
		{body: "[registry]\nauth_file = \"/srv/auth.json\"\n", want: "/srv/auth.json"},
		{body: "[registry]\nauth_file = \"\"\n", want: ""}, // off
		{body: "[registry]\nauth_file = \"auth.json\"\n", errHas: "registry.auth_file"},
	} {
		if err := os.WriteFile(p, []byte(tc.body), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p, true)
		if tc.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("%q: err = %v, want one naming %s", tc.body, err, tc.errHas)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.body, err)
			continue
		}
		if c.Registry.AuthFile != tc.want {
			t.Errorf("%q: auth_file = %q, want %q", tc.body, c.Registry.AuthFile, tc.want)
		}
	}
}

// A file naming one handler keeps the default ones (crun, runc): TOML
// tables merge into the defaults' map.
func TestRuntimes(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.toml")
	os.WriteFile(p, []byte("[runtimes.test-handler]\ntype = \"husk\"\n"), 0o644)
	c, err := Load(p, true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Runtimes["test-handler"].Type != RuntimeHusk || c.Runtimes["crun"].Path != "crun" || c.Runtimes["runc"].Type != RuntimeOCI {
		t.Fatalf("runtimes = %+v", c.Runtimes)
	}
	for body, want := range map[string]string{
		"[runtimes.Bad_Name]\ntype = \"husk\"\n":                          "runtimes.Bad_Name",
		"[runtimes.x]\ntype = \"kata\"\n":                                 "runtimes.x.type",
		"[runtimes.x]\ntype = \"oci\"\n":                                  "runtimes.x.path",
		"[runtimes.x]\ntype = \"husk\"\npath = \"/bin/crun\"\n":           "runtimes.x.path",
		"[runtimes.x]\ntype = \"oci\"\npath = \"crun\"\nroot = \"rel\"\n": "runtimes.x.root",
	} {
		os.WriteFile(p, []byte(body), 0o644)
		if _, err := Load(p, true); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one naming %s", body, err, want)
		}
	}
}
