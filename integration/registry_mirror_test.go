package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// Mirrors in certs.d/<host>/hosts.toml are tried in file order, then the
// server, as containerd does: a mirror that is down (nothing listening on
// its port) or that answers 500 or 404 is passed over for the next, and the
// pull succeeds from the first host that has the image. The images' own
// registry name (a .test domain) is never contacted: the server is a test
// server on 127.0.0.1 that counts what reaches it.
func TestRegistryMirrorFallback(t *testing.T) {
	requireRoot(t)
	src := busyboxRef(t) // 127.0.0.1:PORT/test/busybox:1 on the shared docker-registry
	regAddr, repo, _ := strings.Cut(src, "/")
	d := StartDaemonWith(t, DaemonOptions{NoDefaultNetwork: true})
	upstream := newFakeRegistry(t, http.StatusServiceUnavailable, "UNAVAILABLE", "husk-test upstream must not be asked")

	t.Run("mirror down then registry", func(t *testing.T) {
		const domain = "down.husk.test"
		down := fmt.Sprintf("127.0.0.1:%d", deadPort(t))
		writeHostsToml(t, d, domain, fmt.Sprintf("server = %q\n\n", upstream.URL)+
			mirrorEntry("http://"+down)+mirrorEntry("http://"+regAddr))
		ref := domain + "/" + repo
		if _, err := pullWith(t, d, ref, nil); err != nil {
			t.Fatalf("pull %s with the first mirror down: %v", ref, err)
		}
		if !imageTagged(t, d, ref) {
			t.Errorf("%s not listed after the pull", ref)
		}
		// The down mirror was tried (and its failure logged) before the
		// registry served the pull.
		if log := d.Log(); !strings.Contains(log, down) {
			t.Errorf("daemon log does not name the down mirror %s: it was not tried", down)
		}
	})

	t.Run("mirrors answering 500 and 404 then registry", func(t *testing.T) {
		const domain = "broken.husk.test"
		m500 := newFakeRegistry(t, http.StatusInternalServerError, "UNKNOWN", "husk-test mirror is broken")
		m404 := newFakeRegistry(t, http.StatusNotFound, "MANIFEST_UNKNOWN", "husk-test mirror has no such manifest")
		writeHostsToml(t, d, domain, fmt.Sprintf("server = %q\n\n", upstream.URL)+
			mirrorEntry(m500.URL)+mirrorEntry(m404.URL)+mirrorEntry("http://"+regAddr))
		ref := domain + "/" + repo
		if _, err := pullWith(t, d, ref, nil); err != nil {
			t.Fatalf("pull %s past mirrors answering 500 and 404: %v", ref, err)
		}
		if !imageTagged(t, d, ref) {
			t.Errorf("%s not listed after the pull", ref)
		}
		n500, first500 := m500.Hits()
		n404, first404 := m404.Hits()
		if n500 == 0 || n404 == 0 {
			t.Fatalf("mirrors asked: 500 one %d times, 404 one %d times; want both tried", n500, n404)
		}
		if !first500.Before(first404) {
			t.Errorf("the 404 mirror was asked (%v) before the 500 one (%v): hosts not tried in file order", first404, first500)
		}
	})

	t.Run("mirror answering 404 then server", func(t *testing.T) {
		const domain = "server.husk.test"
		m404 := newFakeRegistry(t, http.StatusNotFound, "MANIFEST_UNKNOWN", "husk-test mirror has no such manifest")
		writeHostsToml(t, d, domain, fmt.Sprintf("server = %q\n\n", "http://"+regAddr)+mirrorEntry(m404.URL))
		ref := domain + "/" + repo
		if _, err := pullWith(t, d, ref, nil); err != nil {
			t.Fatalf("pull %s from the server after a 404 mirror: %v", ref, err)
		}
		if n, _ := m404.Hits(); n == 0 {
			t.Errorf("the mirror was never asked")
		}
	})

	if n, _ := upstream.Hits(); n != 0 {
		t.Errorf("the upstream server got %d requests although a mirror had the image", n)
	}
}
