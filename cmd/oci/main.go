// Command husk-oci is husk's short-lived libcontainer helper. husk-shim runs
// it once per create, start, exec or delete; it exits as soon as the process
// it made is running, so the shim (a child subreaper) inherits that process.
//
// File descriptors: 0 is the new process's stdin, 3 and 4 the write ends of
// its stdout and stderr. With --console, fd 5 is a unix socket and the
// process gets a pty instead; runc init sends its master through fd 5. The
// result is one JSON object on stdout; a failure is one line on stderr and
// exit status 1.
//
// `husk-oci serve` is the same helper started ahead of its call: it gets
// that argv and those descriptors from the shim over fd 3 (serve.go).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/husk-runtime/husk/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "serve" {
		var err error
		if args, err = serve(args[1:]); err != nil || args == nil {
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			return
		}
	}
	if err := run(args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type result struct {
	Pid int `json:"pid,omitempty"`
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: husk-oci create|run|start|exec|delete|update --root DIR --id ID [--bundle DIR] [--process FILE] [--console] [--systemd-cgroup]")
	}
	fs := flag.NewFlagSet("husk-oci "+args[0], flag.ContinueOnError)
	root := fs.String("root", "", "libcontainer state root")
	id := fs.String("id", "", "container id")
	bundle := fs.String("bundle", "", "bundle dir holding config.json (create)")
	procFile := fs.String("process", "", "OCI process JSON (exec)")
	console := fs.Bool("console", false, "give the process a pty; fd 5 is the socket its master is sent on (create, run, exec)")
	resFile := fs.String("resources", "", "OCI Linux resources JSON (update)")
	// As runc's global flag: the spec's cgroupsPath is then
	// slice:prefix:name and the container's cgroup a transient systemd
	// scope. Later calls read the choice from the container's state.
	systemd := fs.Bool("systemd-cgroup", false, "manage the container's cgroup through systemd (create, run)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *root == "" || *id == "" {
		return fmt.Errorf("husk-oci %s: --root and --id are required", args[0])
	}
	stdio := func() oci.Stdio {
		st := oci.Stdio{Stdin: os.Stdin, Stdout: os.NewFile(3, "stdout"), Stderr: os.NewFile(4, "stderr")}
		if *console {
			st.Console = os.NewFile(5, "console-socket")
		}
		return st
	}
	var res result
	var err error
	switch args[0] {
	case "create", "run":
		res.Pid, err = oci.Create(*root, *id, *bundle, stdio(), oci.CreateOptions{Run: args[0] == "run", SystemdCgroup: *systemd})
	case "start":
		err = oci.Start(*root, *id)
	case "exec":
		var proc *specProcess
		proc, err = readProcess(*procFile)
		if err == nil {
			res.Pid, err = oci.Exec(*root, *id, proc, stdio())
		}
	case "delete":
		err = oci.Delete(*root, *id)
	case "update":
		var res *specs.LinuxResources
		res, err = oci.ReadJSON[specs.LinuxResources](*resFile)
		if err == nil {
			err = oci.Update(*root, *id, res)
		}
	default:
		return fmt.Errorf("husk-oci: unknown command %q", args[0])
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}
