package image

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/husk-runtime/husk/errdefs"
	"google.golang.org/grpc/codes"
)

// A pull that failed at several hosts carries the code of the first answer
// that is not a 404, as containerd reports it; 404 only when every
// registry answer was one; Unavailable when no host could be reached.
func TestClassifyPull(t *testing.T) {
	reg := func(code int) error {
		return fmt.Errorf("http://127.0.0.1:1/v2: %w", &transport.Error{StatusCode: code})
	}
	refused := fmt.Errorf("Get \"http://127.0.0.1:2/v2/\": %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	noName := fmt.Errorf("Get \"https://registry.invalid/v2/\": %w", &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "registry.invalid", IsNotFound: true}})
	other := errors.New("x509: certificate signed by unknown authority")
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
		{"all refused", pull(refused, refused), codes.Unavailable},
		{"refused and no such host", pull(refused, noName), codes.Unavailable},
		{"refused and a certificate refused", pull(refused, other), codes.Unknown},
		{"server 500", pull(reg(http.StatusInternalServerError)), codes.Unknown},
		{"stalled after a mirror's 404", pull(reg(http.StatusNotFound), fmt.Errorf("%w: host x", ErrStalled)), codes.DeadlineExceeded},
	} {
		if got := errdefs.Code(classifyPull(c.err)); got != c.want {
			t.Errorf("%s: code %v, want %v", c.what, got, c.want)
		}
		if classifyPull(c.err).Error() != c.err.Error() {
			t.Errorf("%s: message changed", c.what)
		}
	}
}
