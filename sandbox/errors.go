package sandbox

import "errors"

// Error classes the CRI layer maps to gRPC codes. Every error the manager
// returns wraps at most one of them, with a message naming the object.
var (
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrInvalid            = errors.New("invalid argument")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrDeadlineExceeded   = errors.New("deadline exceeded")
)
