package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/husk-runtime/husk/integration/testenv"
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The tests named TestPullProgress* check `husk pull` (issue 4 point 6,
// issue 5 point 3): the real CLI binary in a pseudo-terminal, against a real
// daemon pulling from a real docker-registry, or against a CRI endpoint
// without husk's API.

// throttledProxy serves a reverse proxy to target on 127.0.0.1 that sends
// blob bodies slowly (chunk bytes, then a pause), so a pull of several MB
// lasts long enough for its progress bar to be drawn many times. It returns
// the proxy's host:port.
func throttledProxy(t *testing.T, target string, chunk int, pause time.Duration) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1 // pass each chunk on at once
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method == http.MethodGet && strings.Contains(resp.Request.URL.Path, "/blobs/") {
			resp.Body = &slowBody{ReadCloser: resp.Body, chunk: chunk, pause: pause}
		}
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

type slowBody struct {
	io.ReadCloser
	chunk int
	pause time.Duration
}

func (b *slowBody) Read(p []byte) (int, error) {
	time.Sleep(b.pause)
	return b.ReadCloser.Read(p[:min(len(p), b.chunk)])
}

// bigImage is busybox plus n layers of size random bytes each: random, so
// that gzip leaves them their size.
func bigImage(t *testing.T, n, size int) v1.Image {
	t.Helper()
	img := busyboxImage(t)
	rng := rand.NewChaCha8([32]byte{42})
	for i := range n {
		data := make([]byte, size)
		rng.Read(data)
		var err error
		if img, err = testenv.WithFile(img, fmt.Sprintf("/data/blob%d", i), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// runInPty runs the built husk with args in a pseudo-terminal of 120
// columns and returns everything it wrote there, and its exit error.
func runInPty(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir(t), "husk"), args...)
	cmd.Env = append(os.Environ(), "TERM=xterm")
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 120})
	if err != nil {
		t.Fatalf("start husk in a pty: %v", err)
	}
	defer ptmx.Close()
	var out bytes.Buffer
	copied := make(chan error, 1)
	go func() {
		_, err := io.Copy(&out, ptmx)
		copied <- err
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var runErr error
	select {
	case runErr = <-done:
	case <-time.After(5 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("husk %s did not end within 5 minutes; output:\n%q", strings.Join(args, " "), out.String())
	}
	// Linux reports EIO on the master once the terminal's last user is
	// gone: the end of the output.
	if err := <-copied; err != nil && !errors.Is(err, syscall.EIO) {
		t.Fatalf("read the pty: %v", err)
	}
	return out.String(), runErr
}

var (
	cursorUpRE   = regexp.MustCompile(`\x1b\[(\d+)A`)
	eraseLineRE  = regexp.MustCompile(`\r?\x1b\[2K`)
	partialBarRE = regexp.MustCompile(`: Downloading \[=*>? *\] +[0-9.]+[kMG]?B/[0-9.]+[kMG]?B`)
	fullBarRE    = regexp.MustCompile(`^[0-9a-f]{12}: Pull complete \[=+>\] +([0-9.]+[kMG]?B)/([0-9.]+[kMG]?B)$`)
)

// lastFrame returns the layer lines of the last frame drawn: what follows
// the last cursor-up, up to the "Image ID" line, without line erasures.
func lastFrame(out string) []string {
	locs := cursorUpRE.FindAllStringIndex(out, -1)
	rest := out[locs[len(locs)-1][1]:]
	var lines []string
	for _, l := range strings.Split(rest, "\n") {
		l = strings.TrimRight(eraseLineRE.ReplaceAllString(l, ""), "\r")
		if l == "" || strings.HasPrefix(l, "Image ID:") {
			continue
		}
		lines = append(lines, l)
	}
	return lines
}

// TestPullProgress pulls a multi-layer image (busybox and three layers of
// 3 MB of random data) through a throttled proxy with `husk pull` in a
// pty: the bars are redrawn in place many times, the last frame shows
// every layer complete with all its bytes, and the image is then listed
// by `husk images`. A second pull with stdout not a terminal prints plain
// lines, and every layer as already there; a missing image fails on one
// line with its gRPC code.
func TestPullProgress(t *testing.T) {
	requireRoot(t)
	const extra, size = 3, 3 << 20
	img := bigImage(t, extra, size)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	reg := startRegistryWith(t, testenv.RegistryOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := testenv.Push(ctx, img, reg.Ref("progress/big:1")); err != nil {
		t.Fatalf("push: %v", err)
	}
	// 32 KiB per 10 ms: about 3 MB/s per layer, so each big layer takes
	// about a second and the bars are redrawn ten times a second.
	proxy := throttledProxy(t, reg.URL(), 32<<10, 10*time.Millisecond)
	ref := proxy + "/progress/big:1"
	d := StartDaemon(t)
	ep := "unix://" + d.Socket

	out, err := runInPty(t, "pull", ref, "--endpoint", ep)
	if err != nil {
		t.Fatalf("husk pull in a pty: %v\noutput:\n%q", err, out)
	}
	t.Logf("husk pull wrote %d bytes to the terminal; last lines:\n%s", len(out), tail(out, 12))

	if !strings.HasPrefix(out, "Pulling "+ref+"\r\n") {
		t.Errorf("output does not start with the header %q: %q", "Pulling "+ref, out[:min(len(out), 200)])
	}
	ups := cursorUpRE.FindAllStringSubmatch(out, -1)
	if len(ups) < 5 {
		t.Errorf("the bars were redrawn %d times, want several (cursor-up sequences)", len(ups))
	}
	for _, u := range ups {
		if u[1] != fmt.Sprint(len(layers)) {
			t.Errorf("a redraw moved up %s lines, want %d (one per layer)", u[1], len(layers))
			break
		}
	}
	if n := len(partialBarRE.FindAllString(out, -1)); n < 5 {
		t.Errorf("%d partly filled download bars drawn, want several", n)
	}
	frame := lastFrame(out)
	if len(frame) != len(layers) {
		t.Fatalf("last frame has %d lines, want %d (one per layer):\n%s", len(frame), len(layers), strings.Join(frame, "\n"))
	}
	for i, l := range frame {
		m := fullBarRE.FindStringSubmatch(l)
		if m == nil || m[1] != m[2] {
			t.Errorf("last frame, layer %d is not complete at 100%%: %q", i, l)
		}
		d, _ := layers[i].Digest()
		if !strings.HasPrefix(l, d.Hex[:12]+":") {
			t.Errorf("last frame, line %d is not layer %s: %q", i, d, l)
		}
	}
	id := imageStatus(t, d, ref).GetId()
	if id == "" {
		t.Fatalf("ImageStatus %s: no image after husk pull", ref)
	}
	if !strings.Contains(out, "Image ID: "+id+"\r\n") {
		t.Errorf("output does not end with the image id %s", id)
	}

	list := huskOK(t, d, nil, "images")
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(proxy+"/progress/big") + `\s+1\s+` + regexp.QuoteMeta(id[len("sha256:"):][:13]) + `\s`).MatchString(list) {
		t.Errorf("husk images does not list %s with tag 1 and id %s:\n%s", ref, id, list)
	}
	if js := huskOK(t, d, nil, "images", "-o", "json"); !strings.Contains(js, `"id": "`+id+`"`) {
		t.Errorf("husk images -o json lacks %s:\n%s", id, js)
	}

	// Not a terminal: plain lines; the layers are all there already.
	plain := huskOK(t, d, nil, "pull", ref)
	if strings.Contains(plain, "\x1b") {
		t.Errorf("husk pull to a pipe wrote escape sequences:\n%q", plain)
	}
	if n := strings.Count(plain, ": Already exists\n"); n != len(layers) {
		t.Errorf("second pull: %d layers already there, want %d:\n%s", n, len(layers), plain)
	}
	if !strings.HasSuffix(plain, "Image ID: "+id+"\n") {
		t.Errorf("second pull does not end with the image id:\n%s", plain)
	}

	_, errOut, err := husk(t, d, nil, "pull", proxy+"/progress/missing:1")
	if err == nil {
		t.Errorf("husk pull of a missing image succeeded")
	}
	if lines := strings.Split(strings.TrimSpace(errOut), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "pull "+proxy+"/progress/missing:1: NotFound: ") {
		t.Errorf("husk pull of a missing image: stderr %q, want one line with NotFound", errOut)
	}

	if out := huskOK(t, d, nil, "rmi", ref); out != "Deleted: "+ref+"\n" {
		t.Errorf("husk rmi %s printed %q", ref, out)
	}
	if list := huskOK(t, d, nil, "images", "-q"); strings.Contains(list, id) {
		t.Errorf("husk images -q still lists %s after rmi:\n%s", id, list)
	}
	if _, errOut, err := husk(t, d, nil, "rmi", ref); err == nil || !strings.Contains(errOut, "not found") {
		t.Errorf("husk rmi of a removed image: %v, stderr %q; want a failure naming it not found", err, errOut)
	}
}

// fakeImageService is a CRI endpoint that serves only ImageService
// PullImage, slowly, as a runtime without husk's API would: husk.v1 calls
// get Unimplemented.
type fakeImageService struct {
	runtimeapi.UnimplementedImageServiceServer
	mu   sync.Mutex
	reqs []*runtimeapi.PullImageRequest
}

const fakeImageID = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func (f *fakeImageService) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	select {
	case <-time.After(1500 * time.Millisecond):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &runtimeapi.PullImageResponse{ImageRef: fakeImageID}, nil
}

// TestPullProgressSpinner runs `husk pull` in a pty against an endpoint
// that has no husk API: it shows a spinner with the time elapsed until
// PullImage returns, then the image id; --creds reach PullImage.
func TestPullProgressSpinner(t *testing.T) {
	dir, err := os.MkdirTemp("", "husk-spin-") // short: a socket path must fit in 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeImageService{}
	g := grpc.NewServer()
	runtimeapi.RegisterImageServiceServer(g, fake)
	go g.Serve(l)
	t.Cleanup(g.Stop)

	out, err := runInPty(t, "pull", "--creds", "alice:s3cret:x", "example.test/team/app:1", "--endpoint", "unix://"+sock)
	if err != nil {
		t.Fatalf("husk pull against a runtime without husk's API: %v\noutput:\n%q", err, out)
	}
	frames := regexp.MustCompile(`\r\x1b\[2K([|/\\-]) Pulling example\.test/team/app:1 \(([0-9.]+)(m?s)\)`).FindAllStringSubmatch(out, -1)
	if len(frames) < 5 {
		t.Fatalf("%d spinner frames, want several (PullImage takes 1.5 s, a frame every 100 ms):\n%q", len(frames), out)
	}
	if frames[0][1] == frames[1][1] {
		t.Errorf("the spinner does not turn: %q then %q", frames[0][0], frames[1][0])
	}
	lastElapsed, _ := time.ParseDuration(frames[len(frames)-1][2] + frames[len(frames)-1][3])
	if lastElapsed < time.Second {
		t.Errorf("last spinner frame shows %v elapsed, want over 1s (PullImage takes 1.5 s)", lastElapsed)
	}
	if !strings.HasSuffix(out, "Image ID: "+fakeImageID+"\r\n") {
		t.Errorf("output does not end with the image id: %q", tail(out, 3))
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.reqs) != 1 {
		t.Fatalf("%d PullImage calls, want 1", len(fake.reqs))
	}
	if a := fake.reqs[0].GetAuth(); a.GetUsername() != "alice" || a.GetPassword() != "s3cret:x" || fake.reqs[0].GetImage().GetImage() != "example.test/team/app:1" {
		t.Errorf("PullImage got image %q, auth %v; want example.test/team/app:1 with alice / s3cret:x", fake.reqs[0].GetImage().GetImage(), a)
	}
}
