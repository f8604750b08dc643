package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
)

// What a registry says reaches kubelet with a code it can act on and the
// registry's own message: 401 Unauthenticated, 403 PermissionDenied, 404
// NotFound, 429 ResourceExhausted. When several hosts (mirrors, then the
// server) all fail, the code is the first failure that is not a 404, as in
// containerd: a mirror that merely lacks the image must not hide that the
// registry itself refused or rate-limited the pull.
func TestRegistryErrorCodes(t *testing.T) {
	requireRoot(t)
	src := busyboxRef(t) // the shared docker-registry: 127.0.0.1:PORT/test/busybox:1
	regAddr, _, _ := strings.Cut(src, "/")
	d := StartDaemonWith(t, DaemonOptions{NoDefaultNetwork: true})
	code := func(c codes.Code) []codes.Code { return []codes.Code{c} }

	// A real registry: unknown repository, unknown tag (docker-registry 2.8
	// answers MANIFEST_UNKNOWN to both).
	_, err := pullWith(t, d, regAddr+"/test/no-such-image:1", nil)
	expectPullError(t, "unknown repository", err, code(codes.NotFound), regAddr, "MANIFEST_UNKNOWN")
	_, err = pullWith(t, d, regAddr+"/test/busybox:no-such-tag", nil)
	expectPullError(t, "unknown tag", err, code(codes.NotFound), regAddr, "MANIFEST_UNKNOWN")

	const limited = "husk-test: pull rate limit reached, retry in 6h"
	r429 := newFakeRegistry(t, http.StatusTooManyRequests, "TOOMANYREQUESTS", limited)
	_, err = pullWith(t, d, r429.Host()+"/test/busybox:1", nil)
	expectPullError(t, "registry answering 429", err, code(codes.ResourceExhausted), r429.Host(), "TOOMANYREQUESTS", limited)

	r403 := newFakeRegistry(t, http.StatusForbidden, "DENIED", "husk-test: requested access to the resource is denied")
	_, err = pullWith(t, d, r403.Host()+"/test/busybox:1", nil)
	expectPullError(t, "registry answering 403", err, code(codes.PermissionDenied), r403.Host(), "requested access to the resource is denied")

	r401 := newFakeRegistry(t, http.StatusUnauthorized, "UNAUTHORIZED", "husk-test: authentication required")
	m404 := newFakeRegistry(t, http.StatusNotFound, "MANIFEST_UNKNOWN", "husk-test mirror: manifest unknown")
	down := fmt.Sprintf("http://127.0.0.1:%d", deadPort(t))
	for _, c := range []struct {
		domain, server string
		mirrors        []string
		want           codes.Code
		words          []string
	}{
		// The mirror lacks the image; the registry rate-limits: 429 wins.
		{"limited.husk.test", r429.URL, []string{m404.URL}, codes.ResourceExhausted, []string{r429.Host(), limited}},
		// The mirror lacks the image; the registry wants credentials.
		{"private.husk.test", r401.URL, []string{down, m404.URL}, codes.Unauthenticated, []string{r401.Host(), "authentication required"}},
		// The mirror is down; the registry has no such image.
		{"missing.husk.test", "http://" + regAddr, []string{down}, codes.NotFound, []string{regAddr, "MANIFEST_UNKNOWN"}},
	} {
		body := fmt.Sprintf("server = %q\n\n", c.server)
		for _, m := range c.mirrors {
			body += mirrorEntry(m)
		}
		writeHostsToml(t, d, c.domain, body)
		_, err := pullWith(t, d, c.domain+"/test/no-such-image:1", nil)
		expectPullError(t, fmt.Sprintf("%s (mirrors %v, server %s)", c.domain, c.mirrors, c.server), err, code(c.want), c.words...)
	}
}
