package cri

import (
	"context"
	"errors"
	"net/http"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/husk-runtime/husk/image"
	"github.com/husk-runtime/husk/sandbox"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// toStatus turns a core error into a gRPC status with the code its class
// calls for and the core's message, which names what was wrong.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && errors.Unwrap(err) == nil {
		return err
	}
	return status.Error(codeOf(err), err.Error())
}

func codeOf(err error) codes.Code {
	switch {
	case errors.Is(err, sandbox.ErrNotFound), errors.Is(err, image.ErrNotFound):
		return codes.NotFound
	case errors.Is(err, sandbox.ErrInvalid), errors.Is(err, image.ErrInvalidReference):
		return codes.InvalidArgument
	case errors.Is(err, sandbox.ErrAlreadyExists):
		return codes.AlreadyExists
	case errors.Is(err, sandbox.ErrFailedPrecondition):
		return codes.FailedPrecondition
	case errors.Is(err, sandbox.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded), errors.Is(err, image.ErrStalled):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		// A full file system (or quota) under the root or state dir: the
		// message has the path (every *fs.PathError names it).
		return codes.ResourceExhausted
	}
	if te := registryError(err); te != nil {
		switch te.StatusCode {
		case http.StatusNotFound:
			return codes.NotFound
		case http.StatusUnauthorized:
			return codes.Unauthenticated
		case http.StatusForbidden:
			return codes.PermissionDenied
		case http.StatusTooManyRequests:
			return codes.ResourceExhausted
		}
	}
	return codes.Unknown
}

// registryError returns the registry answer that speaks for a failed pull.
// A pull tries its hosts (mirrors, then the server) in turn and joins their
// errors; errors.As would pick the first, so a mirror that merely lacks the
// image (404) would hide that the registry itself asked for credentials or
// rate-limited the pull, and kubelet would stop retrying an image that
// exists. As containerd's resolver does, the first answer other than 404
// wins; a 404 only when no host said anything else.
func registryError(err error) *transport.Error {
	var first *transport.Error
	var walk func(error) *transport.Error
	walk = func(e error) *transport.Error {
		if e == nil {
			return nil
		}
		if te, ok := e.(*transport.Error); ok {
			if te.StatusCode != http.StatusNotFound {
				return te
			}
			if first == nil {
				first = te
			}
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, c := range u.Unwrap() {
				if te := walk(c); te != nil {
					return te
				}
			}
		case interface{ Unwrap() error }:
			return walk(u.Unwrap())
		}
		return nil
	}
	if te := walk(err); te != nil {
		return te
	}
	return first
}

func invalid(msg string) error { return status.Error(codes.InvalidArgument, msg) }
