package image

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/husk-runtime/husk/errdefs"
)

// DefaultStallTimeout is how long a pull may go without receiving a byte
// before it is given up. kubelet sets no deadline on PullImage, so a
// registry that stops sending mid-blob would otherwise hold the pull (and
// the pod waiting on it) forever.
const DefaultStallTimeout = time.Minute

// ErrStalled marks a pull given up because the registry stopped sending.
var ErrStalled = errdefs.New(errdefs.ErrDeadlineExceeded, "registry stopped sending")

// errStalled is the cause a stalled pull's context is cancelled with.
type errStalled struct {
	host string
	d    time.Duration
}

func (e *errStalled) Error() string {
	return fmt.Sprintf("no data from registry %s for %s: pull abandoned", e.host, e.d)
}

func (e *errStalled) Unwrap() error { return ErrStalled }

// stallWatch cancels a pull whose transfers make no progress: every read
// of a response body counts as progress; a silence longer than the timeout
// cancels the pull's context, which aborts every request of it.
type stallWatch struct {
	timeout time.Duration
	host    string
	cancel  context.CancelCauseFunc

	mu      sync.Mutex
	timer   *time.Timer
	paused  int  // waits in progress (see pauseStall)
	stopped bool // the pull is over
}

type stallKey struct{}

func newStallWatch(ctx context.Context, host string, timeout time.Duration) (context.Context, *stallWatch) {
	ctx, cancel := context.WithCancelCause(ctx)
	w := &stallWatch{timeout: timeout, host: host, cancel: cancel}
	w.timer = time.AfterFunc(timeout, func() { cancel(&errStalled{host: host, d: timeout}) })
	return context.WithValue(ctx, stallKey{}, w), w
}

// progress pushes the deadline back, unless the clock is paused.
func (w *stallWatch) progress() {
	w.mu.Lock()
	if w.paused == 0 && !w.stopped {
		w.timer.Reset(w.timeout)
	}
	w.mu.Unlock()
}

// stop ends the watch once the pull is over (the data is all in).
func (w *stallWatch) stop() {
	w.mu.Lock()
	w.stopped = true
	w.timer.Stop()
	w.mu.Unlock()
	w.cancel(nil)
}

// pauseStall stops the stall clock of the pull that ctx belongs to (if
// any) until the returned resume is called; resume restarts it with the
// full timeout once no wait is left.
//
// A pull waits so when another pull is downloading a layer both need: the
// waiter then receives nothing itself, possibly for longer than the
// timeout, while the registry is sending all along to the other pull,
// whose own watch notices if that transfer stalls, and the wait ends when
// it fails. Without the pause the waiter was abandoned as "stalled" (and
// kubelet told DeadlineExceeded) because of a shared download in good
// health. While paused, the pull's other transfers are not watched; the
// clock restarts from zero when the wait ends.
func pauseStall(ctx context.Context) (resume func()) {
	w, _ := ctx.Value(stallKey{}).(*stallWatch)
	if w == nil {
		return func() {}
	}
	w.mu.Lock()
	w.paused++
	w.timer.Stop()
	w.mu.Unlock()
	return sync.OnceFunc(func() {
		w.mu.Lock()
		w.paused--
		if w.paused == 0 && !w.stopped {
			w.timer.Reset(w.timeout)
		}
		w.mu.Unlock()
	})
}

// transport wraps a round tripper so response bodies report progress.
func (w *stallWatch) transport(base http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		w.progress()
		resp.Body = &progressBody{ReadCloser: resp.Body, w: w}
		return resp, nil
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type progressBody struct {
	io.ReadCloser
	w *stallWatch
}

func (b *progressBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.progress()
	}
	return n, err
}
