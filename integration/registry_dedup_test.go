package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/husk-runtime/husk/integration/testenv"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// countingProxy is a reverse proxy on 127.0.0.1 in front of a real
// docker-registry that counts what the registry is asked for: GETs and
// HEADs of each blob, the first GET of each manifest. It sends one blob
// slowly, so that pulls needing them overlap for a few seconds.
type countingProxy struct {
	*httptest.Server
	slow map[string]bool // digests of the blobs sent slowly

	mu        sync.Mutex
	gets      map[string]int       // blob digest -> GETs
	heads     map[string]int       // blob digest -> HEADs
	manifests map[string]time.Time // repo -> first manifest GET
	slowStart time.Time            // first slow blob's GET
	slowDone  time.Time            // last slow blob sent
}

func newCountingProxy(t testing.TB, registry string, slow []string) *countingProxy {
	t.Helper()
	target, err := url.Parse("http://" + registry)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1 // pass each write on at once, so the throttle shows
	p := &countingProxy{slow: map[string]bool{}, gets: map[string]int{}, heads: map[string]int{}, manifests: map[string]time.Time{}}
	for _, d := range slow {
		p.slow[d] = true
	}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repo, kind, ref := splitV2Path(r.URL.Path)
		now := time.Now()
		p.mu.Lock()
		switch {
		case kind == "blobs" && r.Method == http.MethodGet:
			p.gets[ref]++
		case kind == "blobs" && r.Method == http.MethodHead:
			p.heads[ref]++
		case kind == "manifests" && r.Method == http.MethodGet:
			if _, ok := p.manifests[repo]; !ok {
				p.manifests[repo] = now
			}
		}
		throttle := kind == "blobs" && r.Method == http.MethodGet && p.slow[ref]
		if throttle && p.slowStart.IsZero() {
			p.slowStart = now
		}
		p.mu.Unlock()
		if !throttle {
			rp.ServeHTTP(w, r)
			return
		}
		rp.ServeHTTP(&throttledWriter{ResponseWriter: w, per: 64 << 10, pause: 60 * time.Millisecond}, r)
		p.mu.Lock()
		p.slowDone = time.Now()
		p.mu.Unlock()
	}))
	t.Cleanup(p.Close)
	return p
}

// splitV2Path splits /v2/<repo>/<kind>/<ref> (kind "blobs" or "manifests").
func splitV2Path(p string) (repo, kind, ref string) {
	p = strings.TrimPrefix(p, "/v2/")
	for _, k := range []string{"/blobs/", "/manifests/"} {
		if i := strings.LastIndex(p, k); i >= 0 {
			return p[:i], strings.Trim(k, "/"), p[i+len(k):]
		}
	}
	return "", "", ""
}

// throttledWriter sends at most per bytes, then waits pause: a 3 MiB blob
// takes about 3 s, steadily (no silence a stall timeout would notice).
type throttledWriter struct {
	http.ResponseWriter
	per   int
	pause time.Duration
	sent  int
}

func (w *throttledWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		c := min(len(b), w.per-w.sent)
		m, err := w.ResponseWriter.Write(b[:c])
		n += m
		if err != nil {
			return n, err
		}
		b = b[c:]
		w.sent += c
		if w.sent == w.per {
			w.sent = 0
			if f, ok := w.ResponseWriter.(http.Flusher); ok {
				f.Flush()
			}
			time.Sleep(w.pause)
		}
	}
	return n, nil
}

func (w *throttledWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (p *countingProxy) counts(d string) (gets, heads int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gets[d], p.heads[d]
}

func layerDigests(t testing.TB, img v1.Image) []string {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d.String())
	}
	return out
}

// Two concurrent PullImage calls of two images that share their lower
// layers (busybox and three 3 MiB layers) make the registry send each shared
// blob once, counted on the registry's side by a proxy in front of it.
//
// The big layers are sent slowly (about 3 s each, side by side) and the
// daemon's stall timeout is 1 s. The second pull starts once the first is
// downloading all three, so it has every one of its three download slots
// waiting for the first pull's downloads and receives nothing itself for
// seconds: it must not be abandoned as stalled (its own top layer is still
// to fetch when the wait ends), since the registry is sending all along.
func TestRegistrySharedLayerDownloadedOnce(t *testing.T) {
	requireRoot(t)
	src := busyboxRef(t)
	regAddr, _, _ := strings.Cut(src, "/")

	sharedImg := busyboxImage(t)
	rng := rand.NewChaCha8([32]byte{'h', 'u', 's', 'k'})
	for i := range 3 {
		big := make([]byte, 3<<20)
		rng.Read(big) // incompressible: 3 MiB on the wire
		var err error
		if sharedImg, err = testenv.WithFile(sharedImg, fmt.Sprintf("/data/shared%d.bin", i), big, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repos := []string{"dedup/a", "dedup/b"}
	imgs := map[string]v1.Image{}
	for _, repo := range repos {
		n := path.Base(repo)
		img, err := testenv.WithFile(sharedImg, "/"+n+".txt", []byte(n+"\n"), 0o644)
		if err != nil {
			t.Fatal(err)
		}
		imgs[repo] = img
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		err = testenv.Push(ctx, img, regAddr+"/"+repo+":1")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	shared := layerDigests(t, sharedImg)
	bigLayers := shared[len(shared)-3:]
	proxy := newCountingProxy(t, regAddr, bigLayers)
	proxyHost := strings.TrimPrefix(proxy.URL, "http://")

	d := StartDaemonWith(t, DaemonOptions{NoDefaultNetwork: true, StallTimeoutSeconds: 1})
	var wg sync.WaitGroup
	errs := make([]error, len(repos))
	start := time.Now()
	for i, repo := range repos {
		if i == 1 {
			// Start the second pull once the first downloads every big layer.
			deadline := time.Now().Add(time.Minute)
			for {
				n := 0
				for _, dg := range bigLayers {
					if g, _ := proxy.counts(dg); g > 0 {
						n++
					}
				}
				if n == len(bigLayers) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the first pull did not start downloading the %d big layers within a minute (%d started)", len(bigLayers), n)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		ref := proxyHost + "/" + repo + ":1"
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = d.Img.PullImage(ctxT(t, 2*time.Minute), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
		}()
	}
	wg.Wait()
	took := time.Since(start)
	for i, err := range errs {
		ref := proxyHost + "/" + repos[i] + ":1"
		if err != nil {
			t.Errorf("pull %s: %v", ref, err)
		} else if !imageTagged(t, d, ref) {
			t.Errorf("%s not listed after its pull", ref)
		}
	}

	proxy.mu.Lock()
	slowStart, slowDone := proxy.slowStart, proxy.slowDone
	manifests := map[string]time.Time{}
	for k, v := range proxy.manifests {
		manifests[k] = v
	}
	proxy.mu.Unlock()
	t.Logf("both pulls took %v; the shared big layers were sent in %v", took, slowDone.Sub(slowStart))
	// The count means something only if the pulls overlapped: both asked
	// for their manifest before the big layers were through.
	for _, repo := range repos {
		m, ok := manifests[repo]
		if !ok {
			t.Errorf("no manifest GET for %s reached the registry", repo)
		} else if slowDone.IsZero() || !m.Before(slowDone) {
			t.Errorf("%s's manifest was asked for at %v, after the shared layers were through (%v): the pulls did not overlap", repo, m, slowDone)
		}
	}
	for _, dg := range shared {
		gets, heads := proxy.counts(dg)
		t.Logf("shared layer %s: %d GET, %d HEAD", dg, gets, heads)
		if gets != 1 {
			t.Errorf("shared layer %s was downloaded %d times, want once", dg, gets)
		}
	}
	for repo, img := range imgs {
		ls := layerDigests(t, img)
		top := ls[len(ls)-1]
		if gets, _ := proxy.counts(top); gets != 1 {
			t.Errorf("%s's own top layer %s was downloaded %d times, want once", repo, top, gets)
		}
	}
}
