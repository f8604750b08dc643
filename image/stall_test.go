package image

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
)

// A registry that stops sending in the middle of a blob: the pull is given
// up after the stall timeout with an error naming the registry, instead of
// hanging (kubelet sets no deadline), and leaves nothing half made.
func TestPullStalledRegistryGivesUp(t *testing.T) {
	var stall atomic.Bool
	release := make(chan struct{})
	defer close(release)
	host := newRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !stall.Load() || r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			body := rec.Body.Bytes()
			_, _ = w.Write(body[:len(body)/2])
			w.(http.Flusher).Flush()
			select { // hold the connection open, sending nothing
			case <-r.Context().Done():
			case <-release:
			}
		})
	})
	img, err := random.Image(256<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/stall/img:1"
	push(t, ref, img)
	s := newStore(t, Config{StallTimeout: 500 * time.Millisecond})
	stall.Store(true)

	start := time.Now()
	_, err = s.Pull(context.Background(), ref, nil)
	took := time.Since(start)
	var st *errStalled
	if !errors.As(err, &st) || !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), host) {
		t.Fatalf("pull from a stalled registry: %v (after %v); want a stall error naming %s", err, took, host)
	}
	if took > 20*time.Second {
		t.Fatalf("stalled pull took %v to give up with a 500ms stall timeout", took)
	}
	if _, err := s.Resolve(ref); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stalled pull left an image: %v", err)
	}
	ents, _ := os.ReadDir(s.layersDir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Fatalf("stalled pull left %s", e.Name())
		}
	}
	// The same store pulls fine once the registry behaves.
	stall.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Pull(ctx, ref, nil); err != nil {
		t.Fatalf("pull after the registry recovered: %v", err)
	}
}
