package errdefs

import (
	"context"
	"errors"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// classCodes is the one table from class to gRPC code; the first class an
// error is of wins, so a more specific cause is listed before a general one.
var classCodes = []struct {
	class error
	code  codes.Code
}{
	{ErrNotFound, codes.NotFound},
	{ErrInvalidArgument, codes.InvalidArgument},
	{ErrAlreadyExists, codes.AlreadyExists},
	{ErrFailedPrecondition, codes.FailedPrecondition},
	{ErrResourceExhausted, codes.ResourceExhausted},
	{ErrUnauthenticated, codes.Unauthenticated},
	{ErrPermissionDenied, codes.PermissionDenied},
	{ErrDeadlineExceeded, codes.DeadlineExceeded},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
	{ErrUnavailable, codes.Unavailable},
	{ErrNotImplemented, codes.Unimplemented},
	// A full file system (or quota) under the root or state dir, however
	// deep the errno sits: the message has the path (every *fs.PathError
	// names it).
	{syscall.ENOSPC, codes.ResourceExhausted},
	{syscall.EDQUOT, codes.ResourceExhausted},
}

// Code is the gRPC code for err: its class's, or the code of a gRPC status
// it carries, or Unknown.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	for _, c := range classCodes {
		if errors.Is(err, c.class) {
			return c.code
		}
	}
	if st, ok := status.FromError(err); ok {
		return st.Code()
	}
	return codes.Unknown
}

// ToGRPC turns err into a gRPC status with its code and its own message,
// which names what was wrong. A status made by the caller passes through.
func ToGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && errors.Unwrap(err) == nil {
		return err
	}
	return status.Error(Code(err), err.Error())
}
