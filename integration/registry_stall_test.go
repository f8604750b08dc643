package integration

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// stallingProxy is a test server on 127.0.0.1 that passes requests on to a
// registry, except GETs of the blobs named in stall: of those it sends the
// headers and the first half of the body, then nothing, holding the
// connection open, as a registry (or a proxy in front of one) that hangs
// in the middle of a layer.
type stallingProxy struct {
	*httptest.Server
	mu      sync.Mutex
	stalled []string // "<digest> sent N of M bytes", one per stalled request
}

func newStallingProxy(t testing.TB, upstream string, stall []string) *stallingProxy {
	t.Helper()
	p := &stallingProxy{}
	release := make(chan struct{})
	client := &http.Client{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), r.Method, upstream+r.URL.RequestURI(), r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.Header = r.Header.Clone()
		req.ContentLength = r.ContentLength
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		digest := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") || !slices.Contains(stall, digest) || resp.ContentLength <= 1 {
			_, _ = io.Copy(w, resp.Body)
			return
		}
		n, _ := io.CopyN(w, resp.Body, resp.ContentLength/2)
		w.(http.Flusher).Flush()
		p.mu.Lock()
		p.stalled = append(p.stalled, fmt.Sprintf("%s sent %d of %d bytes", digest, n, resp.ContentLength))
		p.mu.Unlock()
		select { // silence, the connection open, until the client gives up
		case <-r.Context().Done():
		case <-release:
		}
	}))
	// Cleanups run last first: release the held handlers, then close.
	t.Cleanup(p.Close)
	t.Cleanup(func() { close(release) })
	return p
}

// Stalled returns what the stalled requests had been sent.
func (p *stallingProxy) Stalled() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.stalled)
}

// storeFiles lists the daemon's content and layers dirs, as "dir/name".
func storeFiles(t testing.TB, d *Daemon) []string {
	t.Helper()
	var out []string
	for _, dir := range []string{"content/blobs/sha256", "layers"} {
		ents, err := os.ReadDir(filepath.Join(d.Root, dir))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range ents {
			out = append(out, dir+"/"+e.Name())
		}
	}
	return out
}

// A registry that stops sending in the middle of every layer: with
// registry.stall_timeout_seconds = 2 the daemon gives the pull up after
// about 2 s of silence, and kubelet gets DeadlineExceeded naming the
// registry and the silence (kubelet itself sets no deadline, so without
// it the pull and its pod would wait forever). The failed pull leaves
// nothing in the store, and the image then pulls from the real registry.
func TestRegistryStall(t *testing.T) {
	requireRoot(t)
	src := busyboxRef(t) // the shared docker-registry: 127.0.0.1:PORT/test/busybox:1
	regAddr, repoTag, _ := strings.Cut(src, "/")
	layers, err := busyboxImage(t).Layers()
	if err != nil {
		t.Fatal(err)
	}
	var digests []string
	for _, l := range layers {
		dg, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, dg.String())
	}
	proxy := newStallingProxy(t, "http://"+regAddr, digests)
	proxyHost := strings.TrimPrefix(proxy.URL, "http://")
	ref := proxyHost + "/" + repoTag

	const stall = 2
	d := StartDaemonWith(t, DaemonOptions{NoDefaultNetwork: true, StallTimeoutSeconds: stall})
	before := storeFiles(t, d)
	start := time.Now()
	_, err = pullWith(t, d, ref, nil)
	took := time.Since(start)
	expectPullError(t, "pull from a registry that stalls mid-layer", err, []codes.Code{codes.DeadlineExceeded},
		proxyHost, "no data from registry", "for "+strconv.Itoa(stall)+"s")
	t.Logf("gave up after %v; stalled transfers: %v", took, proxy.Stalled())
	if took < stall*time.Second || took > 30*time.Second {
		t.Errorf("stalled pull gave up after %v, want about %ds", took, stall)
	}
	// The pull did stall mid-blob, not fail some other way first.
	if len(proxy.Stalled()) == 0 {
		t.Errorf("no layer transfer was stalled (layers %v)", digests)
	}
	if imageTagged(t, d, ref) {
		t.Errorf("the stalled pull left %s", ref)
	}
	// Nothing half written, and nothing the failed pull wrote whole
	// (manifest, config) that no image would ever name.
	if after := storeFiles(t, d); !slices.Equal(before, after) {
		t.Errorf("store after the stalled pull: %v; before it: %v", after, before)
	}

	// The daemon is fine: the same image pulls from the real registry.
	if _, err := pullWith(t, d, src, nil); err != nil {
		t.Fatalf("pull from the real registry after the stall: %v", err)
	}
	if !imageTagged(t, d, src) {
		t.Errorf("%s not listed after the pull", src)
	}
}
