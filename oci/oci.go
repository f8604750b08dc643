// Package oci is husk's only user of libcontainer. It runs inside husk-oci,
// the short-lived helper that husk-shim starts for every create, start, exec
// and delete: the helper exits as soon as the process it made is running, so
// the shim that outlives it (a child subreaper) becomes the parent of every
// container process and collects their exits, while the roughly 8 MB that a
// Go process embedding libcontainer costs is paid only for milliseconds.
package oci

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Stdio is what the shim hands down: the container's stdin and the write
// ends of its stdout and stderr pipes. They must be real files: libcontainer
// passes an *os.File straight to the child, while any other writer would make
// it copy through a goroutine that dies with this helper.
//
// Console, when set, is a unix socket: the process then gets a new pty as
// its stdio and runc init sends the pty master through the socket straight
// to the shim (which holds the other end), so this helper never touches it.
type Stdio struct {
	Stdin, Stdout, Stderr *os.File
	Console               *os.File
}

// LoadSpec reads bundle/config.json.
func LoadSpec(bundle string) (*specs.Spec, error) {
	return ReadJSON[specs.Spec](filepath.Join(bundle, "config.json"))
}

// CreateOptions are Create's choices beyond the spec.
type CreateOptions struct {
	// Run also lets the init exec at once, saving a helper round trip
	// where nothing happens between create and start (the infra
	// container).
	Run bool
	// SystemdCgroup makes the cgroup a transient systemd scope (the
	// spec's cgroupsPath is slice:prefix:name), as runc's
	// --systemd-cgroup.
	SystemdCgroup bool
}

// Create makes the container and starts its init, which then waits on the
// exec fifo (state "created") until Start (see CreateOptions.Run). It
// returns the init's pid.
func Create(root, id, bundle string, stdio Stdio, opts CreateOptions) (int, error) {
	run := opts.Run
	spec, err := LoadSpec(bundle)
	if err != nil {
		return 0, err
	}
	if spec.Process == nil {
		return 0, fmt.Errorf("create %s: spec in %s has no process", id, bundle)
	}
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
		CgroupName:       id,
		UseSystemdCgroup: opts.SystemdCgroup,
		Spec:             spec,
		// Without pivot_root the container could reach the host's mount tree.
		NoPivotRoot: false,
	})
	if err != nil {
		return 0, fmt.Errorf("create %s: convert spec from %s: %w", id, bundle, err)
	}
	c, err := libcontainer.Create(root, id, cfg)
	if err != nil {
		return 0, fmt.Errorf("create %s: libcontainer create in %s: %w", id, root, err)
	}
	p, err := newProcess(spec.Process, stdio)
	if err != nil {
		_ = c.Destroy()
		return 0, fmt.Errorf("create %s: %w", id, err)
	}
	p.Init = true
	start := c.Start
	if run {
		start = c.Run
	}
	if err := start(p); err != nil {
		_ = c.Destroy()
		return 0, fmt.Errorf("create %s: start init: %w", id, err)
	}
	pid, err := p.Pid()
	if err != nil {
		_ = c.Destroy()
		return 0, fmt.Errorf("create %s: init pid: %w", id, err)
	}
	return pid, nil
}

// Start lets a created container's init exec the user process.
func Start(root, id string) error {
	c, err := libcontainer.Load(root, id)
	if err != nil {
		return fmt.Errorf("start %s: load from %s: %w", id, root, err)
	}
	if err := c.Exec(); err != nil {
		return fmt.Errorf("start %s: %w", id, err)
	}
	return nil
}

// Exec runs an extra process in a running container and returns its pid.
func Exec(root, id string, proc *specs.Process, stdio Stdio) (int, error) {
	c, err := libcontainer.Load(root, id)
	if err != nil {
		return 0, fmt.Errorf("exec in %s: load from %s: %w", id, root, err)
	}
	p, err := newProcess(proc, stdio)
	if err != nil {
		return 0, fmt.Errorf("exec in %s: %w", id, err)
	}
	if err := c.Run(p); err != nil {
		return 0, fmt.Errorf("exec in %s: %w", id, err)
	}
	return p.Pid()
}

// Delete destroys the container: kills what still runs, removes its cgroup
// leaf and libcontainer state. A container that does not exist is already
// deleted, which keeps removal idempotent across crashes.
func Delete(root, id string) error {
	c, err := libcontainer.Load(root, id)
	if errors.Is(err, libcontainer.ErrNotExist) {
		// libcontainer makes the container's dir in Create and writes
		// its state.json only when the init has started: a create killed
		// in between leaves a dir Load calls nonexistent.
		if err := os.RemoveAll(filepath.Join(root, id)); err != nil {
			return fmt.Errorf("delete %s: remove state dir: %w", id, err)
		}
		return nil
	}
	if err != nil {
		// State that cannot be read (half-written by a crash) is removed so
		// that the id can be reused; the cgroup is swept by the daemon.
		if rmErr := os.RemoveAll(filepath.Join(root, id)); rmErr != nil {
			return fmt.Errorf("delete %s: load: %v; remove state: %w", id, err, rmErr)
		}
		return nil
	}
	st, err := c.Status()
	if err != nil {
		return fmt.Errorf("delete %s: status: %w", id, err)
	}
	if st == libcontainer.Running || st == libcontainer.Paused {
		// Not our child: poll until the kernel reports it gone. The shim
		// reaps it; a zombie already counts as stopped.
		if err := c.Signal(unix.SIGKILL); err != nil && !errors.Is(err, libcontainer.ErrNotRunning) {
			return fmt.Errorf("delete %s: kill: %w", id, err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, err = c.Status()
			if err != nil || st == libcontainer.Stopped {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("delete %s: still %s 10s after SIGKILL", id, st)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if err := c.Destroy(); err != nil {
		return fmt.Errorf("delete %s: destroy: %w", id, err)
	}
	return nil
}

// newProcess carries over what specconv leaves out of the config: args, env,
// cwd, user and rlimits belong to the process, not the container, and a
// container without explicit rlimits would inherit the shim's.
func newProcess(sp *specs.Process, stdio Stdio) (*libcontainer.Process, error) {
	nnp := sp.NoNewPrivileges
	p := &libcontainer.Process{
		Args:            sp.Args,
		Env:             sp.Env,
		UID:             int(sp.User.UID),
		GID:             int(sp.User.GID),
		Cwd:             sp.Cwd,
		NoNewPrivileges: &nnp,
		AppArmorProfile: sp.ApparmorProfile,
		Stdin:           stdio.Stdin,
		Stdout:          stdio.Stdout,
		Stderr:          stdio.Stderr,
	}
	if stdio.Console != nil {
		// The pty slave becomes fds 0-2 inside the container; pipes handed
		// down as well would only be inherited and never used.
		p.Stdin, p.Stdout, p.Stderr = nil, nil, nil
		p.ConsoleSocket = stdio.Console
		if sp.ConsoleSize != nil {
			p.ConsoleWidth, p.ConsoleHeight = uint16(sp.ConsoleSize.Width), uint16(sp.ConsoleSize.Height)
		}
	}
	if sp.Capabilities != nil {
		p.Capabilities = &configs.Capabilities{
			Bounding:    sp.Capabilities.Bounding,
			Effective:   sp.Capabilities.Effective,
			Inheritable: sp.Capabilities.Inheritable,
			Permitted:   sp.Capabilities.Permitted,
			Ambient:     sp.Capabilities.Ambient,
		}
	}
	for _, g := range sp.User.AdditionalGids {
		p.AdditionalGroups = append(p.AdditionalGroups, int(g))
	}
	for _, rl := range sp.Rlimits {
		typ, ok := rlimits[strings.ToUpper(rl.Type)]
		if !ok {
			return nil, fmt.Errorf("unknown rlimit %q", rl.Type)
		}
		p.Rlimits = append(p.Rlimits, configs.Rlimit{Type: typ, Hard: rl.Hard, Soft: rl.Soft})
	}
	return p, nil
}

var rlimits = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK": unix.RLIMIT_STACK,
}
