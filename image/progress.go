package image

// Pull progress: what each pull in progress has done so far, for clients
// that watch it (the husk CLI's progress bars, through api/v1
// PullProgress). The CRI's PullImage is unary, so a watcher follows a pull
// by its normalized reference, whoever started it.
//
// Cost to a pull nobody watches: one map insert and delete per pull, a
// small allocation per layer, a mutex and a channel close per state change
// (a handful per layer), and one atomic add per Read of a layer stream
// (reads of 32 KiB or so, so well under one add per 10 KB). Nothing runs
// in the background: a watcher samples the byte counters itself, at most
// every progressInterval, in its own goroutine (the gRPC handler's).
// BenchmarkCountingReader measures the per-read cost.

import (
	"context"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// PullState is where one pull is.
type PullState int

// The states of a pull, in the order it goes through them.
const (
	PullNotStarted PullState = iota + 1 // no pull of the ref in progress
	PullResolving                       // manifest and config being fetched
	PullPulling                         // layers known and being fetched
	PullDone                            // succeeded: ImageID is set
	PullFailed                          // failed: Err is set
)

// final reports whether st ends a pull.
func (st PullState) final() bool { return st == PullDone || st == PullFailed }

// LayerState is where one layer of a pull is.
type LayerState int32

// The states of a layer, in the order it goes through them.
const (
	LayerWaiting             LayerState = iota + 1 // queued behind the pull's other layers
	LayerDownloading                               // bytes coming in (and being unpacked as they come)
	LayerWaitingForOtherPull                       // another pull is fetching this layer
	LayerVerifying                                 // all bytes in; digests being checked
	LayerUnpacking                                 // checked; layer being put in place
	LayerDone                                      // in place
	LayerAlreadyPresent                            // the store had it
)

// LayerProgress is one layer of a PullProgress.
type LayerProgress struct {
	Digest     string // as distributed, "sha256:<hex>"
	Total      int64  // size as distributed, from the manifest
	Downloaded int64
	State      LayerState
}

// PullProgress is a snapshot of one pull.
type PullProgress struct {
	Ref     string // normalized
	State   PullState
	Layers  []LayerProgress // lowest first, once the manifest is read
	ImageID string          // PullDone; with PullNotStarted, the image the store holds under Ref, if any
	Err     error           // PullFailed
}

// progressInterval is how often a watcher samples byte counts at most.
// State changes wake it at once.
const progressInterval = 100 * time.Millisecond

// progressTracker knows the pulls in progress and the watchers waiting for
// one to start. Entries exist only while a pull runs or a watcher waits.
type progressTracker struct {
	mu      sync.Mutex
	pulls   map[string][]*pullTrack // by normalized ref, oldest first
	waiters map[string]*refWait     // by normalized ref
}

// refWait is the watchers of one ref waiting for a pull of it to start.
type refWait struct {
	started chan struct{} // closed when the pull starts; each watcher's track is set by then
	watches []*PullWatch
}

// pullTrack is the progress of one pull.
type pullTrack struct {
	ref string

	mu      sync.Mutex
	state   PullState
	layers  []*layerTrack
	imageID string
	err     error
	changed chan struct{} // closed and replaced at each state change
}

// layerTrack is the progress of one layer. Byte counts and state are
// atomics, so the pull's readers update them without a lock.
type layerTrack struct {
	pull       *pullTrack
	digest     string
	total      int64
	downloaded atomic.Int64
	state      atomic.Int32
}

// received is the layer bytes the pull has received so far (a retried
// layer's from its last open).
func (t *pullTrack) received() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n int64
	for _, l := range t.layers {
		n += l.downloaded.Load()
	}
	return n
}

// start records a pull of ref and hands it to the watchers waiting for it.
// The caller must call finish when the pull ends.
func (pt *progressTracker) start(ref string) *pullTrack {
	t := &pullTrack{ref: ref, state: PullResolving, changed: make(chan struct{})}
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if pt.pulls == nil {
		pt.pulls = make(map[string][]*pullTrack)
	}
	pt.pulls[ref] = append(pt.pulls[ref], t)
	if w := pt.waiters[ref]; w != nil {
		for _, wa := range w.watches {
			wa.track = t
		}
		close(w.started)
		delete(pt.waiters, ref)
	}
	return t
}

// finish records the pull's outcome, wakes its watchers and forgets it.
func (pt *progressTracker) finish(t *pullTrack, img Image, err error) {
	t.mu.Lock()
	if err != nil {
		t.state, t.err = PullFailed, err
	} else {
		t.state, t.imageID = PullDone, img.ID
	}
	t.notifyLocked()
	t.mu.Unlock()

	pt.mu.Lock()
	defer pt.mu.Unlock()
	ts := slices.DeleteFunc(pt.pulls[t.ref], func(x *pullTrack) bool { return x == t })
	if len(ts) == 0 {
		delete(pt.pulls, t.ref)
	} else {
		pt.pulls[t.ref] = ts
	}
}

// sizes reports how many pulls and waiting refs the tracker holds (tests).
func (pt *progressTracker) sizes() (pulls, waiters int) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return len(pt.pulls), len(pt.waiters)
}

// setLayers records the layers of the image once its manifest is read. A
// pull that moves on to another registry host sets them again.
func (t *pullTrack) setLayers(descs []v1.Descriptor) {
	if t == nil {
		return
	}
	ls := make([]*layerTrack, len(descs))
	for i, d := range descs {
		ls[i] = &layerTrack{pull: t, digest: d.Digest.String(), total: d.Size}
		ls[i].state.Store(int32(LayerWaiting))
	}
	t.mu.Lock()
	t.state, t.layers = PullPulling, ls
	t.notifyLocked()
	t.mu.Unlock()
}

// layer returns layer i, or nil (whose methods do nothing).
func (t *pullTrack) layer(i int) *layerTrack {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if i < 0 || i >= len(t.layers) {
		return nil
	}
	return t.layers[i]
}

// notifyLocked wakes the watchers. t.mu must be held.
func (t *pullTrack) notifyLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// snapshot returns the pull's progress and a channel closed at its next
// state change.
func (t *pullTrack) snapshot() (PullProgress, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := PullProgress{Ref: t.ref, State: t.state, ImageID: t.imageID, Err: t.err}
	if len(t.layers) > 0 {
		p.Layers = make([]LayerProgress, len(t.layers))
		for i, l := range t.layers {
			p.Layers[i] = LayerProgress{Digest: l.digest, Total: l.total, Downloaded: l.downloaded.Load(), State: LayerState(l.state.Load())}
		}
	}
	return p, t.changed
}

// set moves the layer to st and wakes the watchers.
func (l *layerTrack) set(st LayerState) {
	if l == nil || LayerState(l.state.Swap(int32(st))) == st {
		return
	}
	if st == LayerDone || st == LayerAlreadyPresent {
		// A layer that is complete counts as fully downloaded, also when
		// another pull downloaded it.
		l.downloaded.Store(l.total)
	}
	l.pull.mu.Lock()
	l.pull.notifyLocked()
	l.pull.mu.Unlock()
}

// counting wraps a layer's open function so that the bytes read from it
// are counted, and reading its end moves the layer to LayerVerifying.
func (l *layerTrack) counting(open func() (io.ReadCloser, error)) func() (io.ReadCloser, error) {
	if l == nil {
		return open
	}
	return func() (io.ReadCloser, error) {
		rc, err := open()
		if err != nil {
			return nil, err
		}
		l.downloaded.Store(0) // a retried open starts again
		l.set(LayerDownloading)
		return &countingReader{ReadCloser: rc, l: l}, nil
	}
}

type countingReader struct {
	io.ReadCloser
	l *layerTrack
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if n > 0 {
		c.l.downloaded.Add(int64(n))
	}
	if err == io.EOF {
		c.l.set(LayerVerifying)
	}
	return n, err
}

// Context plumbing: the pull's track rides in its context down to fetch,
// and each layer's to ensureLayer, so their signatures stay as they were
// and paths that track nothing (import, the built-in pause) pass nil.

type pullTrackKey struct{}
type layerTrackKey struct{}

func withPullTrack(ctx context.Context, t *pullTrack) context.Context {
	return context.WithValue(ctx, pullTrackKey{}, t)
}

func pullTrackFrom(ctx context.Context) *pullTrack {
	t, _ := ctx.Value(pullTrackKey{}).(*pullTrack)
	return t
}

func withLayerTrack(ctx context.Context, l *layerTrack) context.Context {
	if l == nil {
		return ctx
	}
	return context.WithValue(ctx, layerTrackKey{}, l)
}

func layerTrackFrom(ctx context.Context) *layerTrack {
	l, _ := ctx.Value(layerTrackKey{}).(*layerTrack)
	return l
}

// PullWatch follows the pull of one ref. It holds nothing in the store
// once closed.
type PullWatch struct {
	s     *Store
	ref   string
	first PullProgress
	sent  bool // the first snapshot went out
	ended bool // the final one went out

	// track is the followed pull; nil while waiting for one to start. Set
	// under s.progress.mu (by WatchPull or start), read under it too, or
	// by Next once wait.started is closed.
	track *pullTrack
	wait  *refWait
	// following is Next's own copy of track, once it is known.
	following *pullTrack
	last      PullProgress
}

// WatchPull starts following the pull of ref: the one in progress (the
// oldest, if several are), or else the next one to start. Close it when
// done.
func (s *Store) WatchPull(ref string) (*PullWatch, error) {
	p, err := parseRef(ref)
	if err != nil {
		return nil, err
	}
	key := p.String()
	w := &PullWatch{s: s, ref: key}
	pt := &s.progress
	pt.mu.Lock()
	if ts := pt.pulls[key]; len(ts) > 0 {
		w.track = ts[0]
	} else {
		if pt.waiters == nil {
			pt.waiters = make(map[string]*refWait)
		}
		rw := pt.waiters[key]
		if rw == nil {
			rw = &refWait{started: make(chan struct{})}
			pt.waiters[key] = rw
		}
		rw.watches = append(rw.watches, w)
		w.wait = rw
	}
	t := w.track
	pt.mu.Unlock()
	w.following = t

	if t != nil {
		w.first, _ = t.snapshot()
	} else {
		w.first = PullProgress{Ref: key, State: PullNotStarted}
		if img, err := s.Resolve(key); err == nil {
			w.first.ImageID = img.ID
		}
	}
	return w, nil
}

// Next returns the pull's next snapshot: first where it is now, then one
// per change (byte counts at most every progressInterval). After the
// snapshot with PullDone or PullFailed it returns io.EOF; it returns ctx's
// error when ctx ends first.
func (w *PullWatch) Next(ctx context.Context) (PullProgress, error) {
	if w.ended {
		return PullProgress{}, io.EOF
	}
	if !w.sent {
		w.sent = true
		w.last = w.first
		w.ended = w.first.State.final()
		return w.first, nil
	}
	if w.following == nil {
		select {
		case <-w.wait.started:
			// start set w.track before closing started.
			w.following = w.track
		case <-ctx.Done():
			return PullProgress{}, ctx.Err()
		}
	}
	var tick *time.Timer
	defer func() {
		if tick != nil {
			tick.Stop()
		}
	}()
	for {
		p, changed := w.following.snapshot()
		if !sameProgress(p, w.last) {
			w.last = p
			w.ended = p.State.final()
			return p, nil
		}
		if tick == nil {
			tick = time.NewTimer(progressInterval)
		} else {
			tick.Reset(progressInterval)
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-ctx.Done():
			return PullProgress{}, ctx.Err()
		}
	}
}

// Close stops the watch; a watch still waiting for its pull to start
// leaves the waiters.
func (w *PullWatch) Close() {
	pt := &w.s.progress
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if w.track != nil || w.wait == nil {
		return
	}
	rw := w.wait
	rw.watches = slices.DeleteFunc(rw.watches, func(x *PullWatch) bool { return x == w })
	if len(rw.watches) == 0 && pt.waiters[w.ref] == rw {
		delete(pt.waiters, w.ref)
	}
}

func sameProgress(a, b PullProgress) bool {
	return a.State == b.State && a.ImageID == b.ImageID && errText(a.Err) == errText(b.Err) && slices.Equal(a.Layers, b.Layers)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
