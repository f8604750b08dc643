// Package pullprogress shows an image pull as it happens: a line per
// layer with a progress bar, from husk's PullProgress stream (api/v1),
// redrawn in place on a terminal or as plain lines; a spinner on runtimes
// without that API. It is what `husk pull` prints.
package pullprogress

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	huskapi "github.com/husk-runtime/husk/api/v1"
	"github.com/husk-runtime/husk/criclient"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type pullResult struct {
	id  string
	err error
}

// finalGrace is how long the CLI waits, once PullImage has returned, for
// the last progress event (sent as the daemon's pull ends, so normally at
// once).
const finalGrace = 2 * time.Second

// Pull pulls req's image through c, showing its progress on out (tty:
// redrawn in place, width columns wide). It subscribes to husk's
// PullProgress, waits for the first event (so nothing of the pull is
// missed), then calls PullImage and draws the events until both are over;
// a runtime without husk's API gets a spinner.
func Pull(ctx context.Context, c *criclient.Client, req *runtimeapi.PullImageRequest, out io.Writer, tty bool, width int) error {
	ref := req.GetImage().GetImage()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	stream, err := huskapi.NewImagesClient(c.Conn).PullProgress(watchCtx, &huskapi.PullProgressRequest{Ref: ref})
	var first *huskapi.PullProgressEvent
	if err == nil {
		first, err = stream.Recv()
	}
	if status.Code(err) == codes.Unimplemented {
		return pullWithSpinner(ctx, c, req, out, tty)
	}
	if err != nil {
		return criclient.Wrap(err, "pull %s", ref)
	}

	events := make(chan *huskapi.PullProgressEvent)
	go func() {
		defer close(events)
		for {
			ev, err := stream.Recv()
			if err != nil {
				// io.EOF after the pull's last event; Canceled once the
				// CLI stops watching. Either way PullImage's result is
				// what counts.
				return
			}
			events <- ev
		}
	}()
	res := make(chan pullResult, 1)
	go func() {
		resp, err := c.Images.PullImage(ctx, req)
		res <- pullResult{id: resp.GetImageRef(), err: err}
	}()

	v := &pullView{out: out, tty: tty, width: width}
	v.update(first)
	v.draw()
	var result *pullResult
	var grace <-chan time.Time
	for events != nil || result == nil {
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			v.update(ev)
			v.draw()
		case r := <-res:
			result = &r
			t := time.NewTimer(finalGrace)
			defer t.Stop()
			grace = t.C
		case <-grace:
			stopWatch() // the stream ends, and events is closed
			grace = nil
		}
	}
	if result.err != nil {
		return criclient.Wrap(result.err, "pull %s", ref)
	}
	// PullImage succeeded, so every layer is in the store, whatever the
	// last event we saw (the followed pull may be another client's).
	v.complete()
	v.draw()
	fmt.Fprintf(out, "Image ID: %s\n", result.id)
	return nil
}

// pullWithSpinner pulls from a runtime that reports no progress, showing
// the time elapsed on a terminal.
func pullWithSpinner(ctx context.Context, c *criclient.Client, req *runtimeapi.PullImageRequest, out io.Writer, tty bool) error {
	ref := req.GetImage().GetImage()
	res := make(chan pullResult, 1)
	go func() {
		resp, err := c.Images.PullImage(ctx, req)
		res <- pullResult{id: resp.GetImageRef(), err: err}
	}()
	start := time.Now()
	var r pullResult
	if !tty {
		fmt.Fprintf(out, "Pulling %s (the runtime reports no progress)\n", ref)
		r = <-res
	} else {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
	wait:
		for i := 0; ; i++ {
			fmt.Fprintf(out, "\r\x1b[2K%s Pulling %s (%s)", spinnerFrame(i), ref, elapsed(time.Since(start)))
			select {
			case r = <-res:
				break wait
			case <-tick.C:
			}
		}
		fmt.Fprint(out, "\r\x1b[2K")
	}
	if r.err != nil {
		return criclient.Wrap(r.err, "pull %s", ref)
	}
	fmt.Fprintf(out, "Pulled %s in %s\nImage ID: %s\n", ref, elapsed(time.Since(start)), r.id)
	return nil
}

func spinnerFrame(i int) string { return string(`|/-\`[i%4]) }

func elapsed(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }

// pullView draws a pull's progress: a header, then one line per layer.
type pullView struct {
	out   io.Writer
	tty   bool
	width int

	ref     string
	header  bool // "Pulling ref" written
	layers  []*huskapi.LayerProgress
	drawn   int               // tty: lines of the last frame, to move back over
	frame   string            // tty: the last frame, not drawn again unchanged
	printed map[string]string // plain: the last status printed per layer
}

func (v *pullView) update(ev *huskapi.PullProgressEvent) {
	if v.ref == "" {
		v.ref = ev.GetRef()
	}
	// Layers are known from the manifest on; events before that (and a
	// NOT_STARTED for a pull not begun) carry none.
	if len(ev.GetLayers()) > 0 {
		v.layers = ev.GetLayers()
	}
}

// complete marks every layer finished: PullImage has succeeded.
func (v *pullView) complete() {
	for _, l := range v.layers {
		switch l.GetState() {
		case huskapi.LayerState_LAYER_STATE_DONE, huskapi.LayerState_LAYER_STATE_ALREADY_PRESENT:
		default:
			l.State = huskapi.LayerState_LAYER_STATE_DONE
			l.DownloadedBytes = l.GetTotalBytes()
		}
	}
}

// draw writes the current frame: on a terminal, over the previous one;
// otherwise, a line for each layer whose status changed.
func (v *pullView) draw() {
	var b strings.Builder
	if !v.header && v.ref != "" {
		fmt.Fprintf(&b, "Pulling %s\n", v.ref)
		v.header = true
	}
	if v.tty {
		var f strings.Builder
		for _, l := range v.layers {
			// Clear, then write at most width-1 columns: a line that
			// wraps would make the next frame's cursor-up miss.
			fmt.Fprintf(&f, "\r\x1b[2K%s\n", truncate(layerLine(l), v.width-1))
		}
		if f.String() != v.frame {
			if v.drawn > 0 {
				fmt.Fprintf(&b, "\x1b[%dA", v.drawn) // back to the frame's first line
			}
			b.WriteString(f.String())
			v.frame, v.drawn = f.String(), len(v.layers)
		}
	} else {
		if v.printed == nil {
			v.printed = make(map[string]string)
		}
		for _, l := range v.layers {
			st := layerStatus(l)
			if v.printed[l.GetDigest()] != st {
				v.printed[l.GetDigest()] = st
				fmt.Fprintf(&b, "%s: %s\n", ShortDigest(l.GetDigest()), st)
			}
		}
	}
	_, _ = io.WriteString(v.out, b.String())
}

// barWidth is docker's.
const barWidth = 50

// layerLine is one layer's line on a terminal, as docker pull draws it:
//
//	9ad63333ebc9: Downloading [=======>                    ]  12.3MB/45.6MB
//	9ad63333ebc9: Pull complete [===========================>]  45.6MB/45.6MB
func layerLine(l *huskapi.LayerProgress) string {
	s := ShortDigest(l.GetDigest()) + ": " + layerStatus(l)
	switch l.GetState() {
	case huskapi.LayerState_LAYER_STATE_DOWNLOADING, huskapi.LayerState_LAYER_STATE_VERIFYING,
		huskapi.LayerState_LAYER_STATE_UNPACKING, huskapi.LayerState_LAYER_STATE_DONE:
		s += " " + progressBar(l.GetDownloadedBytes(), l.GetTotalBytes(), barWidth) +
			" " + fmt.Sprintf("%8s/%s", HumanSize(l.GetDownloadedBytes()), HumanSize(l.GetTotalBytes()))
	}
	return s
}

// layerStatus is the word docker uses for the state, where it has one.
func layerStatus(l *huskapi.LayerProgress) string {
	switch l.GetState() {
	case huskapi.LayerState_LAYER_STATE_WAITING:
		return "Waiting"
	case huskapi.LayerState_LAYER_STATE_DOWNLOADING:
		return "Downloading"
	case huskapi.LayerState_LAYER_STATE_WAITING_FOR_OTHER_PULL:
		return "Waiting for another pull of it"
	case huskapi.LayerState_LAYER_STATE_VERIFYING:
		return "Verifying Checksum"
	case huskapi.LayerState_LAYER_STATE_UNPACKING:
		return "Extracting"
	case huskapi.LayerState_LAYER_STATE_DONE:
		return "Pull complete"
	case huskapi.LayerState_LAYER_STATE_ALREADY_PRESENT:
		return "Already exists"
	}
	return "Pending"
}

// progressBar draws docker's bar: "[=====>     ]", width columns inside.
func progressBar(done, total int64, width int) string {
	n := 0
	if total > 0 {
		n = int(min(done, total) * int64(width) / total)
	}
	var b strings.Builder
	b.WriteByte('[')
	switch {
	case n >= width:
		b.WriteString(strings.Repeat("=", width-1) + ">")
	case n > 0:
		b.WriteString(strings.Repeat("=", n-1) + ">" + strings.Repeat(" ", width-n))
	default:
		b.WriteString(strings.Repeat(" ", width))
	}
	b.WriteByte(']')
	return b.String()
}

// HumanSize writes n bytes with decimal units, as docker does ("45.6MB").
func HumanSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	return fmt.Sprintf("%.4g%s", f, units[i])
}

// ShortDigest is the 12 hex digits docker shows of a layer digest.
func ShortDigest(d string) string {
	_, h, ok := strings.Cut(d, ":")
	if !ok {
		h = d
	}
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

func truncate(s string, n int) string {
	if n > 0 && len(s) > n {
		return s[:n]
	}
	return s
}
