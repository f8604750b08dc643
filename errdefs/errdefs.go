// Package errdefs is husk's one error vocabulary: the classes of failure a
// caller can act on, and their mapping to gRPC codes for the CRI and for
// husk's own API alike (ToGRPC), as containerd's errdefs is for its
// services. Packages keep their own sentinels (sandbox's, image's) and
// make each of a class, with New or WithClass; errors.Is finds both the
// sentinel and its class.
package errdefs

import "errors"

// The classes. Each names what the caller did wrong or what the caller can
// wait for; an error of none of them is Unknown to the caller.
var (
	ErrNotFound           = errors.New("not found")
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrAlreadyExists      = errors.New("already exists")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrResourceExhausted  = errors.New("resource exhausted")
	ErrDeadlineExceeded   = errors.New("deadline exceeded")
	ErrUnavailable        = errors.New("unavailable")
	ErrUnauthenticated    = errors.New("unauthenticated")
	ErrPermissionDenied   = errors.New("permission denied")
	// ErrNotImplemented: husk does not do this yet (where a peer does);
	// never a made-up result instead.
	ErrNotImplemented = errors.New("not implemented")
)

// New returns a sentinel of class with a message of its own (image's "image
// not found" is an ErrNotFound).
func New(class error, msg string) error {
	return &classed{msg: msg, class: class}
}

type classed struct {
	msg   string
	class error
}

func (e *classed) Error() string { return e.msg }
func (e *classed) Unwrap() error { return e.class }

// WithClass makes err of class, its message unchanged; nil stays nil.
func WithClass(err, class error) error {
	if err == nil {
		return nil
	}
	return &withClass{err: err, class: class}
}

type withClass struct{ err, class error }

func (e *withClass) Error() string   { return e.err.Error() }
func (e *withClass) Unwrap() []error { return []error{e.err, e.class} }
