package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/husk-runtime/husk/integration/testenv"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The tests named TestRegistry* check issue 4's registry points against
// real docker-registry processes (and, for misbehaviour a real registry
// cannot be made to show, small test servers on 127.0.0.1), through a real
// daemon's CRI PullImage.

var busyboxImg struct {
	once sync.Once
	img  v1.Image
	err  error
}

// busyboxImage is the test busybox image (Debian's busybox), built once.
func busyboxImage(t testing.TB) v1.Image {
	t.Helper()
	busyboxImg.once.Do(func() {
		busyboxImg.img, busyboxImg.err = testenv.BuildBusybox(testenv.DefaultCacheDir())
	})
	if busyboxImg.err != nil {
		t.Fatalf("build busybox image: %v", busyboxImg.err)
	}
	return busyboxImg.img
}

// startRegistryWith starts a docker-registry with extra configuration in a
// temp dir, stopped at cleanup.
func startRegistryWith(t testing.TB, opts testenv.RegistryOptions) *testenv.Registry {
	t.Helper()
	r, err := testenv.StartRegistryProcessWith(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("start docker-registry: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Errorf("stop docker-registry on %s: %v", r.Addr, err)
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(r.Dir, "registry.log"))
			t.Logf("docker-registry %s log:\n%s", r.Addr, tail(string(log), 60))
		}
	})
	return r
}

// pushWith pushes img to ref (plain HTTP) with the given credentials.
func pushWith(t testing.TB, img v1.Image, ref string, a authn.Authenticator) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := remote.Write(r, img, remote.WithContext(ctx), remote.WithAuth(a)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// pullWith calls PullImage with the given credentials (nil: none).
func pullWith(t testing.TB, d *Daemon, ref string, auth *runtimeapi.AuthConfig) (string, error) {
	t.Helper()
	resp, err := d.Img.PullImage(ctxT(t, 2*time.Minute), &runtimeapi.PullImageRequest{
		Image: &runtimeapi.ImageSpec{Image: ref}, Auth: auth})
	if err != nil {
		return "", err
	}
	return resp.ImageRef, nil
}

// expectPullError checks that err is a gRPC error with one of the codes and
// a message containing every word.
func expectPullError(t testing.TB, what string, err error, want []codes.Code, words ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: pull succeeded, want %v", what, want)
		return
	}
	t.Logf("%s: %v", what, err)
	st, ok := status.FromError(err)
	if !ok {
		t.Errorf("%s: %v is not a gRPC status", what, err)
		return
	}
	found := false
	for _, c := range want {
		found = found || st.Code() == c
	}
	if !found {
		t.Errorf("%s: code %v, want %v; message: %s", what, st.Code(), want, st.Message())
	}
	for _, w := range words {
		if !strings.Contains(st.Message(), w) {
			t.Errorf("%s: message does not contain %q: %s", what, w, st.Message())
		}
	}
}

// removeImage removes ref from the daemon, so the next pull of it starts
// from nothing.
func removeImage(t testing.TB, d *Daemon, ref string) {
	t.Helper()
	if _, err := d.Img.RemoveImage(ctxT(t, time.Minute), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		t.Fatalf("RemoveImage %s: %v", ref, err)
	}
}

// imageTagged reports whether the daemon has an image with tag ref.
func imageTagged(t testing.TB, d *Daemon, ref string) bool {
	t.Helper()
	resp, err := d.Img.ImageStatus(ctxT(t, time.Minute), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		t.Fatalf("ImageStatus %s: %v", ref, err)
	}
	if resp.Image == nil {
		return false
	}
	for _, tag := range resp.Image.RepoTags {
		if tag == ref {
			return true
		}
	}
	return false
}

// deadPort returns a 127.0.0.1 port nothing listens on (it was free a
// moment ago: a connection to it is refused).
func deadPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// fakeRegistry is a test server on 127.0.0.1 that plays a misbehaving
// registry: GET /v2/ answers 200 (so clients go on to the manifest, as a
// rate-limited Docker Hub does), everything else answers status with a
// registry error body. It records the time of every request.
type fakeRegistry struct {
	*httptest.Server
	mu   sync.Mutex
	hits []time.Time
}

func newFakeRegistry(t testing.TB, status int, code, message string) *fakeRegistry {
	t.Helper()
	f := &fakeRegistry{}
	body, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": code, "message": message}}})
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.hits = append(f.hits, time.Now())
		f.mu.Unlock()
		if r.URL.Path == "/v2/" || r.URL.Path == "/v2" {
			w.WriteHeader(http.StatusOK)
			return
		}
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="husk-test"`)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(f.Close)
	return f
}

// Host is "127.0.0.1:PORT".
func (f *fakeRegistry) Host() string { return strings.TrimPrefix(f.URL, "http://") }

// Hits returns how many requests it got and when the first came.
func (f *fakeRegistry) Hits() (int, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.hits) == 0 {
		return 0, time.Time{}
	}
	return len(f.hits), f.hits[0]
}

// writeHostsToml writes certs.d/<domain>/hosts.toml for d.
func writeHostsToml(t testing.TB, d *Daemon, domain, body string) {
	t.Helper()
	dir := filepath.Join(d.CertsDir, domain)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// mirrorEntry is one [host."..."] table allowed to pull and resolve.
func mirrorEntry(url string) string {
	return fmt.Sprintf("[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", url)
}
