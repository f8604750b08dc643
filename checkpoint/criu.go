// Package checkpoint says whether this node can checkpoint containers with
// CRIU, and why not when it cannot: the checkpoint RPCs answer
// FailedPrecondition naming what is missing before anything else.
//
// The checkpoint itself (CRIU images, spec, rootfs diff in the archive
// layout containerd and CRI-O write) is not built yet: on a node where CRIU
// works, the RPCs answer Unimplemented.
package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/husk-runtime/husk/errdefs"
)

// DefaultCRIU is the binary the checks run: Debian's criu package installs
// it on PATH.
const DefaultCRIU = "criu"

// checkTimeout bounds `criu check`, which probes the kernel in a few tens of
// milliseconds where it works.
const checkTimeout = 30 * time.Second

// ErrNoCRIU is the class of every "CRIU cannot work here" error; it is a
// FailedPrecondition: the node, not the request, lacks it.
var ErrNoCRIU = errdefs.New(errdefs.ErrFailedPrecondition, "checkpoints need CRIU")

// UnavailableError says why CRIU cannot checkpoint on this node.
type UnavailableError struct {
	// Reason names what is missing: the binary, or what `criu check`
	// reported.
	Reason string
}

func (e *UnavailableError) Error() string {
	return "checkpoints need CRIU, which cannot work on this node: " + e.Reason
}

func (e *UnavailableError) Unwrap() error { return ErrNoCRIU }

// Check runs `criu check` (criu: a path or a name on PATH) and returns nil
// when CRIU's basic checks pass, else an *UnavailableError. It is run at
// each checkpoint request, not cached: installing CRIU, or a kernel that
// gains what it lacked, takes effect without a daemon restart.
func Check(ctx context.Context, criu string) error {
	path, err := exec.LookPath(criu)
	if err != nil {
		return &UnavailableError{Reason: fmt.Sprintf("%s is not installed (Debian: apt-get install criu)", criu)}
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "check").CombinedOutput()
	if err == nil {
		return nil
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return &UnavailableError{Reason: fmt.Sprintf("%s check: %v", path, err)}
	}
	return &UnavailableError{Reason: fmt.Sprintf("`%s check` exited %d: %s", path, exit.ExitCode(), errorLines(out))}
}

// errorLines is what criu's output says went wrong: its "Error" lines (it
// prints one per failed probe, the cause first), else its last line.
func errorLines(out []byte) string {
	var errs []string
	var last string
	for line := range bytes.Lines(out) {
		l := strings.TrimSpace(string(line))
		if l == "" {
			continue
		}
		last = l
		if strings.HasPrefix(l, "Error") || strings.Contains(l, "Error (") {
			errs = append(errs, l)
		}
	}
	if len(errs) == 0 {
		if last == "" {
			return "no output"
		}
		return last
	}
	return strings.Join(errs, "; ")
}
