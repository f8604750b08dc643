package shim

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
)

// Runtime is the OCI runtime a pod's containers are made with, chosen per
// pod by its RuntimeClass handler. Either way the shim holds the
// containers' stdio, collects their exits and is their parent; only the
// program it runs for create, start, exec, update and delete differs:
//
//   - husk-oci (CLI false): husk's libcontainer helper, with its own
//     command line (cmd/oci): the process's stdio on fds 0, 3 and 4, the
//     pid as JSON on stdout, the error on stderr.
//   - an OCI runtime's runc-compatible command line (CLI true: runc, crun,
//     youki): the process's stdio on fds 0, 1 and 2, the pid in
//     --pid-file, the error in --log as JSON lines, a pty's master through
//     --console-socket (a path, where husk-oci takes an fd).
type Runtime struct {
	Path string // husk-oci, or the runtime's binary
	Root string // its state root (--root)
	CLI  bool
	// SystemdCgroup: containers' cgroups are systemd scopes
	// (--systemd-cgroup, as runc and crun take it).
	SystemdCgroup bool
}

// ociCall is one call of the runtime.
type ociCall struct {
	cmd       string // create, run (create and start at once), start, exec, delete, update
	id        string
	bundle    string // create, run: the dir holding config.json
	process   string // exec: the process JSON file
	resources string // update: the resources JSON file
	console   bool   // create, run, exec: a pty; ociIO.console is the socket its master comes back on
}

// huskOCIArgv is the call as husk-oci's command line.
func (r Runtime) huskOCIArgv(c ociCall) []string {
	argv := []string{r.Path, c.cmd, "--root", r.Root, "--id", c.id}
	if c.bundle != "" {
		argv = append(argv, "--bundle", c.bundle)
	}
	if c.process != "" {
		argv = append(argv, "--process", c.process)
	}
	if c.resources != "" {
		argv = append(argv, "--resources", c.resources)
	}
	if c.console {
		argv = append(argv, "--console")
	}
	if r.SystemdCgroup && (c.cmd == "create" || c.cmd == "run") {
		argv = append(argv, "--systemd-cgroup")
	}
	return argv
}

// cliArgv is the call as a runc-compatible command line, with the helper
// files it names under dir: pid (the process's pid), log (the runtime's
// errors) and, for a pty, console.sock.
func (r Runtime) cliArgv(c ociCall, dir string) ([]string, error) {
	argv := []string{r.Path, "--root", r.Root, "--log", filepath.Join(dir, "log"), "--log-format", "json"}
	if r.SystemdCgroup {
		argv = append(argv, "--systemd-cgroup")
	}
	pidFile := filepath.Join(dir, "pid")
	console := func() []string {
		if c.console {
			return []string{"--console-socket", filepath.Join(dir, "console.sock")}
		}
		return nil
	}
	switch c.cmd {
	case "create":
		argv = append(argv, "create", "--bundle", c.bundle, "--pid-file", pidFile)
		argv = append(argv, console()...)
	case "run":
		// --detach: the runtime exits once the init runs, so the shim
		// (a child subreaper) becomes its parent, as with husk-oci.
		argv = append(argv, "run", "--detach", "--bundle", c.bundle, "--pid-file", pidFile)
		argv = append(argv, console()...)
	case "start":
		argv = append(argv, "start")
	case "exec":
		argv = append(argv, "exec", "--detach", "--process", c.process, "--pid-file", pidFile)
		argv = append(argv, console()...)
	case "delete":
		argv = append(argv, "delete", "--force")
	case "update":
		argv = append(argv, "update", "--resources", c.resources)
	default:
		return nil, fmt.Errorf("oci runtime %s: unknown call %q", r.Path, c.cmd)
	}
	return append(argv, c.id), nil
}

// DeleteArgv is the command that destroys container id when its shim is
// gone (the daemon runs it itself).
func (r Runtime) DeleteArgv(id string) []string {
	if r.CLI {
		if r.SystemdCgroup {
			return []string{r.Path, "--root", r.Root, "--systemd-cgroup", "delete", "--force", id}
		}
		return []string{r.Path, "--root", r.Root, "delete", "--force", id}
	}
	return []string{r.Path, "delete", "--root", r.Root, "--id", id}
}

// Flags are the husk-shim flags that name the runtime (cmd/shim).
func (r Runtime) Flags() []string {
	f := []string{"--oci", r.Path, "--oci-root", r.Root}
	if r.CLI {
		f = append(f, "--oci-cli")
	}
	if r.SystemdCgroup {
		f = append(f, "--oci-systemd-cgroup")
	}
	return f
}

// cliError is the runtime's own account of a failure: the last error its
// --log holds (runc and crun write one JSON object a line, with "level"
// and "msg"), else the log's last line.
func cliError(log []byte) string {
	var last string
	for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		var e struct{ Level, Msg string }
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg != "" {
			if e.Level == "error" || e.Level == "fatal" || e.Level == "" {
				last = e.Msg
			}
			continue
		}
		if s := strings.TrimSpace(line); s != "" {
			last = s
		}
	}
	return last
}
