package shim

import (
	"os"
	"reflect"
	"slices"
	"testing"
)

func TestRuntimeArgv(t *testing.T) {
	husk := Runtime{Path: "/bin/husk-oci", Root: "/run/husk/oci"}
	crun := Runtime{Path: "/usr/bin/crun", Root: "/run/husk/runtimes/crun", CLI: true}
	for _, tc := range []struct {
		call       ociCall
		husk, crun []string
	}{
		{ociCall{cmd: "create", id: "c1", bundle: "/b", console: true},
			[]string{"/bin/husk-oci", "create", "--root", "/run/husk/oci", "--id", "c1", "--bundle", "/b", "--console"},
			[]string{"/usr/bin/crun", "--root", "/run/husk/runtimes/crun", "--log", "/d/log", "--log-format", "json",
				"create", "--bundle", "/b", "--pid-file", "/d/pid", "--console-socket", "/d/console.sock", "c1"}},
		{ociCall{cmd: "run", id: "c1", bundle: "/b"},
			[]string{"/bin/husk-oci", "run", "--root", "/run/husk/oci", "--id", "c1", "--bundle", "/b"},
			[]string{"/usr/bin/crun", "--root", "/run/husk/runtimes/crun", "--log", "/d/log", "--log-format", "json",
				"run", "--detach", "--bundle", "/b", "--pid-file", "/d/pid", "c1"}},
		{ociCall{cmd: "exec", id: "c1", process: "/p.json"},
			[]string{"/bin/husk-oci", "exec", "--root", "/run/husk/oci", "--id", "c1", "--process", "/p.json"},
			[]string{"/usr/bin/crun", "--root", "/run/husk/runtimes/crun", "--log", "/d/log", "--log-format", "json",
				"exec", "--detach", "--process", "/p.json", "--pid-file", "/d/pid", "c1"}},
		{ociCall{cmd: "update", id: "c1", resources: "/r.json"},
			[]string{"/bin/husk-oci", "update", "--root", "/run/husk/oci", "--id", "c1", "--resources", "/r.json"},
			[]string{"/usr/bin/crun", "--root", "/run/husk/runtimes/crun", "--log", "/d/log", "--log-format", "json",
				"update", "--resources", "/r.json", "c1"}},
		{ociCall{cmd: "delete", id: "c1"},
			[]string{"/bin/husk-oci", "delete", "--root", "/run/husk/oci", "--id", "c1"},
			[]string{"/usr/bin/crun", "--root", "/run/husk/runtimes/crun", "--log", "/d/log", "--log-format", "json",
				"delete", "--force", "c1"}},
	} {
		if got := husk.huskOCIArgv(tc.call); !reflect.DeepEqual(got, tc.husk) {
			t.Errorf("husk-oci %s:\n got %q\nwant %q", tc.call.cmd, got, tc.husk)
		}
		got, err := crun.cliArgv(tc.call, "/d")
		if err != nil || !reflect.DeepEqual(got, tc.crun) {
			t.Errorf("crun %s: %v\n got %q\nwant %q", tc.call.cmd, err, got, tc.crun)
		}
	}
	if _, err := crun.cliArgv(ociCall{cmd: "pause", id: "c1"}, "/d"); err == nil {
		t.Error("an unknown call got a command line")
	}
	if got, want := crun.DeleteArgv("c1"), []string{"/usr/bin/crun", "--root", "/run/husk/runtimes/crun", "delete", "--force", "c1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("DeleteArgv = %q", got)
	}
	if got := crun.Flags(); got[len(got)-1] != "--oci-cli" {
		t.Errorf("Flags = %q: the shim would take crun for husk-oci", got)
	}
	if got := husk.Flags(); len(got) != 4 {
		t.Errorf("husk-oci Flags = %q", got)
	}

	// The systemd driver: husk-oci is told at create (its state keeps
	// it), a runc-compatible runtime at every call, as runc wants it.
	husk.SystemdCgroup, crun.SystemdCgroup = true, true
	for _, cmd := range []string{"create", "run"} {
		if got := husk.huskOCIArgv(ociCall{cmd: cmd, id: "c1", bundle: "/b"}); got[len(got)-1] != "--systemd-cgroup" {
			t.Errorf("husk-oci %s under systemd: %q", cmd, got)
		}
	}
	if got := husk.huskOCIArgv(ociCall{cmd: "start", id: "c1"}); slices.Contains(got, "--systemd-cgroup") {
		t.Errorf("husk-oci start takes no --systemd-cgroup: %q", got)
	}
	if got, _ := crun.cliArgv(ociCall{cmd: "update", id: "c1", resources: "/r.json"}, "/d"); !slices.Contains(got, "--systemd-cgroup") || slices.Index(got, "--systemd-cgroup") > slices.Index(got, "update") {
		t.Errorf("crun update under systemd: %q", got)
	}
	if got := crun.DeleteArgv("c1"); !slices.Contains(got, "--systemd-cgroup") {
		t.Errorf("crun DeleteArgv under systemd: %q", got)
	}
	if got := husk.Flags(); got[len(got)-1] != "--oci-systemd-cgroup" {
		t.Errorf("the shim is not told of the systemd driver: %q", got)
	}
}

// The error runc and crun write to --log: JSON lines, the last error wins.
func TestCLIError(t *testing.T) {
	for log, want := range map[string]string{
		`{"level":"warning","msg":"cgroup v1 is deprecated","time":"x"}` + "\n" +
			`{"level":"error","msg":"exec: \"nope\": executable file not found in $PATH","time":"x"}` + "\n": `exec: "nope": executable file not found in $PATH`,
		`{"msg": "executable file ` + "`nope`" + ` not found in $PATH: No such file or directory", "level": "error", "time": "x"}`: "executable file `nope` not found in $PATH: No such file or directory",
		"plain text failure\n": "plain text failure",
		"":                     "",
	} {
		if got := cliError([]byte(log)); got != want {
			t.Errorf("cliError(%q) = %q, want %q", log, got, want)
		}
	}
}

func TestInitRuns(t *testing.T) {
	if !initRuns(os.Getpid()) {
		t.Error("this process reads as not running")
	}
	if initRuns(1 << 30) {
		t.Error("a pid that does not exist reads as running")
	}
}
