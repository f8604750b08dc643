package pullprogress

import (
	"regexp"
	"strings"
	"testing"

	huskapi "github.com/husk-runtime/husk/api/v1"
)

func TestProgressBar(t *testing.T) {
	for _, c := range []struct {
		done, total int64
		want        string
	}{
		{0, 100, "[          ]"},
		{0, 0, "[          ]"},
		{10, 100, "[>         ]"},
		{55, 100, "[====>     ]"},
		{99, 100, "[========> ]"},
		{100, 100, "[=========>]"},
		{150, 100, "[=========>]"}, // never past the end
	} {
		if got := progressBar(c.done, c.total, 10); got != c.want {
			t.Errorf("progressBar(%d, %d) = %q, want %q", c.done, c.total, got, c.want)
		}
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 999: "999B", 1000: "1kB", 12_345_678: "12.35MB", 4_194_304: "4.194MB", 3_000_000_000: "3GB"} {
		if got := HumanSize(n); got != want {
			t.Errorf("HumanSize(%d) = %q, want %q", n, got, want)
		}
	}
}

const dgst = "sha256:9ad63333ebc97e32b987ae66aa3cff81300e4c2e6d2f2395cef8a3ae18b249fe"

func TestLayerLine(t *testing.T) {
	for _, c := range []struct {
		l    *huskapi.LayerProgress
		want string
	}{
		{&huskapi.LayerProgress{Digest: dgst, TotalBytes: 2_000_000, State: huskapi.LayerState_LAYER_STATE_WAITING}, "9ad63333ebc9: Waiting"},
		{&huskapi.LayerProgress{Digest: dgst, TotalBytes: 2_000_000, DownloadedBytes: 1_000_000, State: huskapi.LayerState_LAYER_STATE_DOWNLOADING},
			"9ad63333ebc9: Downloading [========================>                         ]      1MB/2MB"},
		{&huskapi.LayerProgress{Digest: dgst, TotalBytes: 2_000_000, DownloadedBytes: 2_000_000, State: huskapi.LayerState_LAYER_STATE_DONE},
			"9ad63333ebc9: Pull complete [=================================================>]      2MB/2MB"},
		{&huskapi.LayerProgress{Digest: dgst, TotalBytes: 2_000_000, DownloadedBytes: 2_000_000, State: huskapi.LayerState_LAYER_STATE_ALREADY_PRESENT}, "9ad63333ebc9: Already exists"},
		{&huskapi.LayerProgress{Digest: dgst, State: huskapi.LayerState_LAYER_STATE_WAITING_FOR_OTHER_PULL}, "9ad63333ebc9: Waiting for another pull of it"},
	} {
		if got := layerLine(c.l); got != c.want {
			t.Errorf("layerLine(%v) =\n%q, want\n%q", c.l, got, c.want)
		}
	}
}

func event(states ...huskapi.LayerState) *huskapi.PullProgressEvent {
	ev := &huskapi.PullProgressEvent{Ref: "docker.io/library/x:1", State: huskapi.PullState_PULL_STATE_PULLING}
	for i, st := range states {
		ev.Layers = append(ev.Layers, &huskapi.LayerProgress{Digest: "sha256:" + strings.Repeat(string(rune('a'+i)), 64), TotalBytes: 100, DownloadedBytes: 50, State: st})
	}
	return ev
}

var cursorUp = regexp.MustCompile(`\x1b\[\d+A`)

// On a terminal each frame after the first moves the cursor back up over
// the previous one and rewrites every line; nothing runs past the width.
func TestPullViewTerminal(t *testing.T) {
	var out strings.Builder
	v := &pullView{out: &out, tty: true, width: 40}
	v.update(&huskapi.PullProgressEvent{Ref: "docker.io/library/x:1", State: huskapi.PullState_PULL_STATE_NOT_STARTED})
	v.draw()
	if got := out.String(); got != "Pulling docker.io/library/x:1\n" {
		t.Fatalf("first frame = %q", got)
	}
	out.Reset()
	down := huskapi.LayerState_LAYER_STATE_DOWNLOADING
	v.update(event(down, down))
	v.draw()
	first := out.String()
	if cursorUp.MatchString(first) {
		t.Errorf("the first frame with layers moves up: %q", first)
	}
	if n := strings.Count(first, "\r\x1b[2K"); n != 2 {
		t.Errorf("first frame clears %d lines, want 2: %q", n, first)
	}
	out.Reset()
	v.update(event(huskapi.LayerState_LAYER_STATE_DONE, down))
	v.draw()
	second := out.String()
	if !strings.HasPrefix(second, "\x1b[2A") {
		t.Errorf("second frame does not start by moving up 2 lines: %q", second)
	}
	for _, line := range strings.Split(strings.TrimSuffix(second, "\n"), "\n") {
		if l := len(strings.TrimPrefix(line[strings.Index(line, "\r"):], "\r\x1b[2K")); l > 39 {
			t.Errorf("line of %d columns on a 40-column terminal: %q", l, line)
		}
	}
	if !strings.Contains(second, "aaaaaaaaaaaa: Pull complete") {
		t.Errorf("second frame lacks the finished layer: %q", second)
	}
}

// Without a terminal, a line is printed per layer status change only.
func TestPullViewPlain(t *testing.T) {
	var out strings.Builder
	v := &pullView{out: &out}
	down := huskapi.LayerState_LAYER_STATE_DOWNLOADING
	v.update(event(huskapi.LayerState_LAYER_STATE_WAITING, down))
	v.draw()
	ev := event(down, down)
	ev.Layers[1].DownloadedBytes = 70 // bytes only: no new line for it
	v.update(ev)
	v.draw()
	v.complete()
	v.draw()
	want := `Pulling docker.io/library/x:1
aaaaaaaaaaaa: Waiting
bbbbbbbbbbbb: Downloading
aaaaaaaaaaaa: Downloading
aaaaaaaaaaaa: Pull complete
bbbbbbbbbbbb: Pull complete
`
	if got := out.String(); got != want {
		t.Errorf("plain output =\n%s\nwant\n%s", got, want)
	}
	if strings.Contains(out.String(), "\x1b") {
		t.Errorf("plain output has escape sequences")
	}
	for _, l := range v.layers {
		if l.GetDownloadedBytes() != l.GetTotalBytes() {
			t.Errorf("completed layer %s at %d of %d bytes", l.GetDigest(), l.GetDownloadedBytes(), l.GetTotalBytes())
		}
	}
}
