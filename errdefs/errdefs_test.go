package errdefs_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"github.com/husk-runtime/husk/errdefs"
	"github.com/husk-runtime/husk/image"
	"github.com/husk-runtime/husk/sandbox"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// One table for the CRI and husk's API: each package sentinel has its
// class's code, wrapped however deep. (image.ErrAmbiguous was
// InvalidArgument through husk's API and Unknown through the CRI, when
// each had its own table.)
func TestCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want codes.Code
	}{
		{nil, codes.OK},
		{sandbox.ErrNotFound, codes.NotFound},
		{sandbox.ErrInvalid, codes.InvalidArgument},
		{sandbox.ErrAlreadyExists, codes.AlreadyExists},
		{sandbox.ErrFailedPrecondition, codes.FailedPrecondition},
		{sandbox.ErrDeadlineExceeded, codes.DeadlineExceeded},
		{image.ErrNotFound, codes.NotFound},
		{image.ErrInvalidReference, codes.InvalidArgument},
		{image.ErrAmbiguous, codes.InvalidArgument},
		{image.ErrInvalidArchive, codes.InvalidArgument},
		{image.ErrNotExportable, codes.FailedPrecondition},
		{image.ErrStalled, codes.DeadlineExceeded},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{context.Canceled, codes.Canceled},
		{errdefs.ErrUnavailable, codes.Unavailable},
		{status.Error(codes.Aborted, "made by the caller"), codes.Aborted},
		{errors.New("something else"), codes.Unknown},
	} {
		wrapped := fmt.Errorf("remove image abc: %w", c.err)
		if c.err == nil {
			wrapped = nil
		}
		if got := errdefs.Code(wrapped); got != c.want {
			t.Errorf("%v: code %v, want %v", c.err, got, c.want)
		}
	}
	// A sentinel keeps its own message; WithClass keeps err's.
	if image.ErrNotFound.Error() != "image not found" {
		t.Errorf("image.ErrNotFound says %q", image.ErrNotFound)
	}
	e := errdefs.WithClass(errors.New("dial tcp: refused"), errdefs.ErrUnavailable)
	if e.Error() != "dial tcp: refused" || !errors.Is(e, errdefs.ErrUnavailable) {
		t.Errorf("WithClass: %q, Is Unavailable %v", e, errors.Is(e, errdefs.ErrUnavailable))
	}
}

// A full disk is ResourceExhausted however deep the errno sits, and the
// message keeps the path.
func TestFullDisk(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT} {
		err := fmt.Errorf("create container abc: %w", &fs.PathError{Op: "write", Path: "/var/lib/husk/pods/x/pod.json", Err: errno})
		if c := errdefs.Code(err); c != codes.ResourceExhausted {
			t.Errorf("%v: code %v, want ResourceExhausted", errno, c)
		}
		if s := errdefs.ToGRPC(err).Error(); !strings.Contains(s, "/var/lib/husk/pods/x/pod.json") {
			t.Errorf("%v: message %q lost the path", errno, s)
		}
	}
}
