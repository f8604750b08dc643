package sandbox

import "github.com/husk-runtime/husk/errdefs"

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
