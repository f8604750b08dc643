package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// randomImage is an image of n layers of size random bytes each (so gzip
// does not shrink them), and their digests.
func randomImage(t *testing.T, seed byte, n, size int) (v1.Image, []v1.Hash) {
	t.Helper()
	rng := rand.NewChaCha8([32]byte{seed})
	var ls []v1.Layer
	var ds []v1.Hash
	for i := range n {
		body := make([]byte, size)
		rng.Read(body)
		l := layerOf(t, []entry{{name: fmt.Sprintf("f%d", i), body: string(body)}})
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		ls, ds = append(ls, l), append(ds, d)
	}
	return imageOf(t, ls...), ds
}

// collect reads a watch to its end.
func collect(t *testing.T, w *PullWatch) []PullProgress {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []PullProgress
	for {
		p, err := w.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("watch: %v after %d events", err, len(out))
		}
		out = append(out, p)
	}
}

// checkTrackerEmpty checks that nothing of a pull or a watch is left: no
// map entry in the tracker and no goroutine in this file's code.
func checkTrackerEmpty(t *testing.T, s *Store) {
	t.Helper()
	if p, w := s.progress.sizes(); p != 0 || w != 0 {
		t.Errorf("tracker holds %d pulls and %d waiting refs after the pulls ended, want none", p, w)
	}
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	for _, g := range strings.Split(stacks, "\n\n") {
		if strings.Contains(g, "image.(*PullWatch)") || strings.Contains(g, "image.(*progressTracker)") {
			t.Errorf("goroutine left in progress code:\n%s", g)
		}
	}
}

// A watch made before the pull starts says so, then follows the pull:
// layers downloading with growing byte counts, and a last event with the
// image id and every layer done at its full size.
func TestWatchPullFollowsPull(t *testing.T) {
	img, ds := randomImage(t, 1, 2, 256<<10)
	sb := &slowBlobs{slow: map[string]bool{}, gets: map[string]int{}, pause: 15 * time.Millisecond}
	for _, d := range ds {
		sb.slow[d.String()] = true // 16 paced writes each: about 240 ms
	}
	host := newRegistry(t, sb.wrap)
	push(t, host+"/big:1", img)
	s := newStore(t, Config{})

	w, err := s.WatchPull(host + "/big:1")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	first, err := w.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if first.State != PullNotStarted || first.ImageID != "" || first.Ref != host+"/big:1" {
		t.Fatalf("first event = %+v, want NotStarted for %s with no image id", first, host+"/big:1")
	}

	type result struct {
		img Image
		err error
	}
	res := make(chan result, 1)
	go func() {
		img, err := s.Pull(context.Background(), host+"/big:1", nil)
		res <- result{img, err}
	}()
	evs := collect(t, w)
	r := <-res
	if r.err != nil {
		t.Fatalf("pull: %v", r.err)
	}

	last := evs[len(evs)-1]
	if last.State != PullDone || last.ImageID != r.img.ID {
		t.Errorf("last event: state %v, image %q; want PullDone, %q", last.State, last.ImageID, r.img.ID)
	}
	if len(last.Layers) != len(ds) {
		t.Fatalf("last event has %d layers, want %d", len(last.Layers), len(ds))
	}
	for i, l := range last.Layers {
		if l.Digest != ds[i].String() || l.State != LayerDone || l.Downloaded != l.Total || l.Total <= 256<<10 {
			t.Errorf("last event, layer %d = %+v; want %s done with all its bytes", i, l, ds[i])
		}
	}
	// Partial progress was seen, and no count went backwards.
	partial := 0
	prev := make([]int64, len(ds))
	for _, e := range evs {
		for i, l := range e.Layers {
			if l.State == LayerDownloading && l.Downloaded > 0 && l.Downloaded < l.Total {
				partial++
			}
			if l.Downloaded < prev[i] {
				t.Errorf("layer %d went back from %d to %d bytes", i, prev[i], l.Downloaded)
			}
			prev[i] = l.Downloaded
		}
	}
	if partial < 2 {
		t.Errorf("saw %d events with a layer partly downloaded in %d events, want several", partial, len(evs))
	}
	if _, err := w.Next(context.Background()); !errors.Is(err, io.EOF) {
		t.Errorf("Next after the last event: %v, want io.EOF", err)
	}
	w.Close()
	checkTrackerEmpty(t, s)

	// The pull is over: a new watch says so with the image's id, and a
	// re-pull finds every layer present.
	w2, err := s.WatchPull(host + "/big:1")
	if err != nil {
		t.Fatal(err)
	}
	p, err := w2.Next(context.Background())
	if err != nil || p.State != PullNotStarted || p.ImageID != r.img.ID {
		t.Errorf("watch after the pull: %+v, %v; want NotStarted with image %s", p, err, r.img.ID)
	}
	go func() {
		img, err := s.Pull(context.Background(), host+"/big:1", nil)
		res <- result{img, err}
	}()
	evs = collect(t, w2)
	if r := <-res; r.err != nil {
		t.Fatalf("re-pull: %v", r.err)
	}
	last = evs[len(evs)-1]
	for i, l := range last.Layers {
		if l.State != LayerAlreadyPresent || l.Downloaded != l.Total {
			t.Errorf("re-pull, layer %d = %+v, want already present", i, l)
		}
	}
	w2.Close()
	checkTrackerEmpty(t, s)
}

// A watch made while the pull runs starts with the pull's state.
func TestWatchPullJoinsPullInProgress(t *testing.T) {
	img, ds := randomImage(t, 2, 1, 256<<10)
	sb := &slowBlobs{slow: map[string]bool{ds[0].String(): true}, gets: map[string]int{}, pause: 20 * time.Millisecond}
	host := newRegistry(t, sb.wrap)
	push(t, host+"/xy:1", img)
	s := newStore(t, Config{})
	errc := make(chan error, 1)
	go func() {
		_, err := s.Pull(context.Background(), host+"/xy:1", nil)
		errc <- err
	}()
	waitGets(t, sb, ds)
	// "xy" means "xy:latest": not this pull.
	w, err := s.WatchPull(host + "/xy")
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := w.Next(context.Background()); p.State != PullNotStarted {
		t.Errorf("watch of %s/xy (latest) while xy:1 pulls: %v, want NotStarted", host, p.State)
	}
	w.Close()
	// Written differently, normalized the same.
	w, err = s.WatchPull(" " + host + "/xy:1")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	evs := collect(t, w)
	if evs[0].State != PullPulling || len(evs[0].Layers) != 1 {
		t.Errorf("first event while pulling = %+v, want PullPulling with 1 layer", evs[0])
	}
	if last := evs[len(evs)-1]; last.State != PullDone {
		t.Errorf("last event = %+v, want PullDone", last)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	checkTrackerEmpty(t, s)
}

// A failed pull ends its watches with the error.
func TestWatchPullFailed(t *testing.T) {
	host := newRegistry(t, nil)
	s := newStore(t, Config{})
	w, err := s.WatchPull(host + "/nothing:1")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, pullErr := s.Pull(context.Background(), host+"/nothing:1", nil)
	if pullErr == nil {
		t.Fatal("pull of a missing image succeeded")
	}
	evs := collect(t, w)
	last := evs[len(evs)-1]
	if last.State != PullFailed || last.Err == nil || last.Err.Error() != pullErr.Error() {
		t.Errorf("last event = %+v, want PullFailed with %q", last, pullErr)
	}
	checkTrackerEmpty(t, s)
}

// A watch given up before any pull starts leaves nothing behind; an
// invalid reference is refused.
func TestWatchPullCancelled(t *testing.T) {
	s := newStore(t, Config{})
	var ws []*PullWatch
	for range 3 {
		w, err := s.WatchPull("example.invalid/a:1")
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	if _, w := s.progress.sizes(); w != 1 {
		t.Errorf("three watches of one ref: %d waiting refs, want 1", w)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := ws[0].Next(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ws[0].Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next with no pull until the deadline: %v, want DeadlineExceeded", err)
	}
	for _, w := range ws {
		w.Close()
		w.Close() // twice is harmless
	}
	checkTrackerEmpty(t, s)
	if _, err := s.WatchPull("bad ref"); !errors.Is(err, ErrInvalidReference) {
		t.Errorf("WatchPull of an invalid reference: %v, want ErrInvalidReference", err)
	}
}

// A layer another pull is downloading shows as waiting for it, then done.
func TestWatchPullWaitingForOtherPull(t *testing.T) {
	sp := startSharedPull(t, 1, 20*time.Millisecond, Config{})
	s, host, errA := sp.s, sp.host, sp.errA
	w, err := s.WatchPull(host + "/img-b:1")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	errB := make(chan error, 1)
	go func() {
		_, err := s.Pull(context.Background(), host+"/img-b:1", nil)
		errB <- err
	}()
	evs := collect(t, w)
	if err := <-errB; err != nil {
		t.Fatal(err)
	}
	if err := <-errA; err != nil {
		t.Fatal(err)
	}
	waited := false
	for _, e := range evs {
		if len(e.Layers) > 0 && e.Layers[0].State == LayerWaitingForOtherPull {
			waited = true
		}
	}
	if !waited {
		t.Errorf("the shared layer never showed as waiting for the other pull in %d events", len(evs))
	}
	if l := evs[len(evs)-1].Layers[0]; l.State != LayerDone || l.Downloaded != l.Total {
		t.Errorf("shared layer at the end: %+v, want done with all its bytes", l)
	}
	checkTrackerEmpty(t, s)
}

// BenchmarkCountingReader compares reading a layer stream through the
// progress counter with reading it bare, in the 32 KiB reads io.Copy
// makes: the counter is one atomic add per read.
func BenchmarkCountingReader(b *testing.B) {
	data := make([]byte, 64<<20)
	for _, counted := range []bool{false, true} {
		b.Run(fmt.Sprintf("counted=%v", counted), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				var r io.Reader = bytes.NewReader(data)
				if counted {
					t := &pullTrack{changed: make(chan struct{})}
					l := &layerTrack{pull: t}
					r = &countingReader{ReadCloser: io.NopCloser(r), l: l}
				}
				if _, err := io.Copy(io.Discard, onlyReader{r}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// onlyReader hides WriterTo, so io.Copy reads in 32 KiB chunks as it does
// from an HTTP body.
type onlyReader struct{ io.Reader }
