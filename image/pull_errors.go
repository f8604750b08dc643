package image

import (
	"context"
	"errors"
	"net"
	"net/http"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/husk-runtime/husk/errdefs"
)

// classifyPull gives a failed pull the class its callers act on: the
// registry's answer (404 not found, 401 credentials, 403 refused, 429 rate
// limit), or unavailable when no host could be reached at all. A pull given
// up (stalled, cancelled, out of time) keeps that class.
func classifyPull(err error) error {
	if err == nil || errors.Is(err, ErrStalled) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if te := registryError(err); te != nil {
		switch te.StatusCode {
		case http.StatusNotFound:
			return errdefs.WithClass(err, errdefs.ErrNotFound)
		case http.StatusUnauthorized:
			return errdefs.WithClass(err, errdefs.ErrUnauthenticated)
		case http.StatusForbidden:
			return errdefs.WithClass(err, errdefs.ErrPermissionDenied)
		case http.StatusTooManyRequests:
			return errdefs.WithClass(err, errdefs.ErrResourceExhausted)
		}
		return err
	}
	if unreachable(err) {
		return errdefs.WithClass(err, errdefs.ErrUnavailable)
	}
	return err
}

// unreachable says whether every host the pull tried failed before an
// answer: connection refused, no route, or a name that does not resolve.
func unreachable(err error) bool {
	for e := err; e != nil; {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			errs := j.Unwrap()
			for _, c := range errs {
				if !unreachable(c) {
					return false
				}
			}
			return len(errs) > 0
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			break
		}
		e = u.Unwrap()
	}
	// One host's chain, no join in it.
	var dns *net.DNSError
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.As(err, &dns)
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
		if te, ok := e.(*transport.Error); ok { //nolint:errorlint // the walk visits every node itself: errors.As would stop at the first
			if te.StatusCode != http.StatusNotFound {
				return te
			}
			if first == nil {
				first = te
			}
		}
		switch u := e.(type) { //nolint:errorlint // as above
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
