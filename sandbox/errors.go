package sandbox

import (
	"fmt"
	"regexp"

	"github.com/husk-runtime/husk/errdefs"
)

// The error classes the manager's errors wrap (errdefs', under the names
// this package has always used). Every error the manager returns wraps at
// most one of them, with a message naming the object.
var (
	ErrNotFound           = errdefs.ErrNotFound
	ErrAlreadyExists      = errdefs.ErrAlreadyExists
	ErrInvalid            = errdefs.ErrInvalidArgument
	ErrFailedPrecondition = errdefs.ErrFailedPrecondition
	ErrDeadlineExceeded   = errdefs.ErrDeadlineExceeded
)

// missingCommandRE matches libcontainer's report (husk-oci's, and runc's
// as a handler) that a container's command is not in its file system: its
// exec.LookPath errors, `exec: "NAME": executable file not found in $PATH`
// and `exec: "/PATH": stat /PATH: no such file or directory`. The report
// crosses husk-oci's and the shim's process boundaries as text, so its
// text is what there is to go by. (crun 1.8.1 exits 1 and says nothing.)
var missingCommandRE = regexp.MustCompile(`exec: "([^"]*)": (?:executable file not found in \$PATH|stat [^:]*: no such file or directory)`)

// notFoundIfMissingCommand makes a create's or start's failure NotFound
// when the runtime said the command is missing: the request named a
// command the image does not have, which kubelet should show as such, not
// as the runtime failing.
func notFoundIfMissingCommand(err error) error {
	m := missingCommandRE.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	return fmt.Errorf("%w: command %q is not in the container's file system: %w", ErrNotFound, m[1], err)
}
