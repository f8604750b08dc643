package cri

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"google.golang.org/grpc/codes"
)

// A pull that failed at several hosts carries the code of the first answer
// that is not a 404, as containerd reports it; 404 only when every
// registry answer was one.
func TestCodeOfJoinedRegistryErrors(t *testing.T) {
	reg := func(code int) error {
		return fmt.Errorf("http://127.0.0.1:1/v2: %w", &transport.Error{StatusCode: code})
	}
	refused := errors.New("dial tcp 127.0.0.1:2: connect: connection refused")
	pull := func(errs ...error) error { return fmt.Errorf("pull x: %w", errors.Join(errs...)) }
	for _, c := range []struct {
		what string
		err  error
		want codes.Code
	}{
		{"one 404", pull(reg(http.StatusNotFound)), codes.NotFound},
		{"mirror 404, server 429", pull(reg(http.StatusNotFound), reg(http.StatusTooManyRequests)), codes.ResourceExhausted},
		{"mirror down, mirror 404, server 401", pull(refused, reg(http.StatusNotFound), reg(http.StatusUnauthorized)), codes.Unauthenticated},
		{"mirror 403, server 404", pull(reg(http.StatusForbidden), reg(http.StatusNotFound)), codes.PermissionDenied},
		{"mirror 429, server 401: the first wins", pull(reg(http.StatusTooManyRequests), reg(http.StatusUnauthorized)), codes.ResourceExhausted},
		{"mirror down, server 404", pull(refused, reg(http.StatusNotFound)), codes.NotFound},
		{"all down", pull(refused, refused), codes.Unknown},
	} {
		if got := codeOf(c.err); got != c.want {
			t.Errorf("%s: code %v, want %v", c.what, got, c.want)
		}
	}
}

// A full disk is ResourceExhausted however deep the errno sits, and the
// message keeps the path.
func TestCodeOfFullDisk(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT} {
		err := fmt.Errorf("create container abc: %w", &fs.PathError{Op: "write", Path: "/var/lib/husk/pods/x/pod.json", Err: errno})
		if c := codeOf(err); c != codes.ResourceExhausted {
			t.Errorf("%v: code %v, want ResourceExhausted", errno, c)
		}
		if s := toStatus(err).Error(); !strings.Contains(s, "/var/lib/husk/pods/x/pod.json") {
			t.Errorf("%v: message %q lost the path", errno, s)
		}
	}
}
