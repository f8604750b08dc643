package cri

import (
	"context"
	"errors"
	"net/http"

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
	}
	var te *transport.Error
	if errors.As(err, &te) {
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

func invalid(msg string) error { return status.Error(codes.InvalidArgument, msg) }
