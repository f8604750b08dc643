package image

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// slowBlobs wraps a registry so that GETs of the given blobs are sent
// slowly but steadily, and counts the GETs of every blob.
type slowBlobs struct {
	mu    sync.Mutex
	slow  map[string]bool
	gets  map[string]int
	pause time.Duration
}

func (sb *slowBlobs) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := strings.LastIndex(r.URL.Path, "/blobs/")
		if r.Method != http.MethodGet || i < 0 {
			h.ServeHTTP(w, r)
			return
		}
		d := r.URL.Path[i+len("/blobs/"):]
		sb.mu.Lock()
		sb.gets[d]++
		slow := sb.slow[d]
		sb.mu.Unlock()
		if slow {
			w = &pacedWriter{ResponseWriter: w, pause: sb.pause}
		}
		h.ServeHTTP(w, r)
	})
}

func (sb *slowBlobs) count(d string) int {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return sb.gets[d]
}

// pacedWriter sends 16 KiB at a time with a pause after each.
type pacedWriter struct {
	http.ResponseWriter
	pause time.Duration
}

func (w *pacedWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		c := min(len(b), 16<<10)
		m, err := w.ResponseWriter.Write(b[:c])
		n += m
		if err != nil {
			return n, err
		}
		w.ResponseWriter.(http.Flusher).Flush()
		b = b[c:]
		time.Sleep(w.pause)
	}
	return n, nil
}

// sharedLayerImages returns two images with nShared random layers of size
// bytes in common, each with its own small top layer.
func sharedLayerImages(t *testing.T, nShared, size int) (shared []v1.Hash, a, b v1.Image) {
	t.Helper()
	rng := rand.NewChaCha8([32]byte{1})
	var ls []v1.Layer
	for i := range nShared {
		body := make([]byte, size)
		rng.Read(body)
		l := layerOf(t, []entry{{name: fmt.Sprintf("shared%d", i), body: string(body)}})
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		shared = append(shared, d)
		ls = append(ls, l)
	}
	a = imageOf(t, append(ls[:len(ls):len(ls)], layerOf(t, []entry{{name: "a", body: "a"}}))...)
	b = imageOf(t, append(ls[:len(ls):len(ls)], layerOf(t, []entry{{name: "b", body: "b"}}))...)
	return shared, a, b
}

// waitGets waits until every digest was asked for at least once.
func waitGets(t *testing.T, sb *slowBlobs, ds []v1.Hash) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := 0
		for _, d := range ds {
			if sb.count(d.String()) > 0 {
				n++
			}
		}
		if n == len(ds) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d slow blobs asked for within 30s", n, len(ds))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// sharedPull is a pull of img-a under way on a store whose registry sends
// the layers img-a shares with img-b slowly (pause per chunk): a pull of
// img-b started now waits for img-a's download of them.
type sharedPull struct {
	s      *Store
	host   string
	sb     *slowBlobs
	shared []v1.Hash
	errA   chan error // img-a's pull result
}

// startSharedPull starts the pull of img-a (nShared shared layers of
// 256 KiB) and returns once the registry was asked for every shared layer.
func startSharedPull(t *testing.T, nShared int, pause time.Duration, cfg Config) *sharedPull {
	t.Helper()
	shared, imgA, imgB := sharedLayerImages(t, nShared, 256<<10)
	sb := &slowBlobs{slow: map[string]bool{}, gets: map[string]int{}, pause: pause}
	for _, d := range shared {
		sb.slow[d.String()] = true
	}
	host := newRegistry(t, sb.wrap)
	push(t, host+"/img-a:1", imgA)
	push(t, host+"/img-b:1", imgB)
	sp := &sharedPull{s: newStore(t, cfg), host: host, sb: sb, shared: shared, errA: make(chan error, 1)}
	go func() {
		_, err := sp.s.Pull(context.Background(), host+"/img-a:1", nil)
		sp.errA <- err
	}()
	waitGets(t, sb, shared)
	return sp
}

// A pull that waits for another pull's download of the layers both need
// receives nothing itself meanwhile, for longer than the stall timeout:
// it is not abandoned as stalled (the registry is sending all along), and
// each shared blob is fetched once. The second pull starts once the first
// downloads all three shared layers, so all three of its download slots
// wait, and its own top layer is still to fetch when the wait ends.
func TestPullWaitingForSharedLayerIsNotAStall(t *testing.T) {
	// about 1 s per shared layer
	sp := startSharedPull(t, parallelLayers, 60*time.Millisecond, Config{StallTimeout: 300 * time.Millisecond})
	s, host, sb, shared, errA := sp.s, sp.host, sp.sb, sp.shared, sp.errA
	start := time.Now()
	if _, err := s.Pull(context.Background(), host+"/img-b:1", nil); err != nil {
		t.Errorf("pull waiting for the other pull's layers: %v (after %v)", err, time.Since(start))
	}
	if err := <-errA; err != nil {
		t.Errorf("first pull: %v", err)
	}
	for _, d := range shared {
		if n := sb.count(d.String()); n != 1 {
			t.Errorf("shared layer %s fetched %d times, want once", d, n)
		}
	}
}

// A pull waiting for another pull's download gives up as soon as its own
// context ends (kubelet cancelled it) rather than when the download ends.
func TestPullWaitingForSharedLayerCancels(t *testing.T) {
	sp := startSharedPull(t, 1, 100*time.Millisecond, Config{})
	s, host, errA := sp.s, sp.host, sp.errA
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Pull(ctx, host+"/img-b:1", nil)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled waiting pull: err = %v, want context.DeadlineExceeded", err)
	}
	if took > time.Second {
		t.Errorf("cancelled waiting pull returned after %v, want about 200ms (the shared download takes ~1.6 s)", took)
	}
	if err := <-errA; err != nil {
		t.Errorf("first pull: %v", err)
	}
}
