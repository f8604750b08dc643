package image

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func writeHosts(t *testing.T, certsd, host, body string) {
	t.Helper()
	d := filepath.Join(certsd, host)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func epStrings(eps []endpoint) []string {
	var out []string
	for _, e := range eps {
		out = append(out, e.String())
	}
	return out
}

func TestEndpointsContainerdSemantics(t *testing.T) {
	certsd := t.TempDir()
	// Mirrors in file order (z before a), no server: upstream still last.
	writeHosts(t, certsd, "docker.io", `
[host."https://z-mirror.example"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
[host."http://a-mirror.example:5000/prefix"]
  capabilities = ["pull"]
[host."https://exact.example/custom/api"]
  override_path = true
`)
	// server set to the mirror itself: no fallback to the internet.
	writeHosts(t, certsd, "registry.k8s.io", `
server = "http://127.0.0.1:5000"
[host."http://127.0.0.1:5000"]
  capabilities = ["pull", "resolve"]
`)
	writeHosts(t, certsd, "_default", `
[host."https://fallback.example"]
`)
	s := newStore(t, Config{ConfigPath: certsd, Insecure: []string{"insecure.example:8080"}})
	for _, tc := range []struct {
		domain string
		want   []string
	}{
		{"docker.io", []string{"https://z-mirror.example/v2", "http://a-mirror.example:5000/prefix/v2", "https://exact.example/custom/api", "https://registry-1.docker.io/v2"}},
		{"registry.k8s.io", []string{"http://127.0.0.1:5000/v2", "http://127.0.0.1:5000/v2"}},
		{"quay.io", []string{"https://fallback.example/v2", "https://quay.io/v2"}},
	} {
		eps, err := s.endpoints(tc.domain)
		if err != nil {
			t.Fatalf("%s: %v", tc.domain, err)
		}
		if got := epStrings(eps); !slices.Equal(got, tc.want) {
			t.Errorf("%s: endpoints %v, want %v", tc.domain, got, tc.want)
		}
	}
	eps, _ := s.endpoints("docker.io")
	if !eps[0].skipVerify || eps[0].caps != capPull|capResolve || eps[1].caps != capPull || eps[3].caps != capAll {
		t.Errorf("docker.io endpoint details: %+v", eps)
	}

	// No config at all.
	s = newStore(t, Config{Insecure: []string{"insecure.example:8080"}})
	for domain, want := range map[string]string{
		"docker.io":             "https://registry-1.docker.io/v2",
		"ghcr.io":               "https://ghcr.io/v2",
		"localhost:5000":        "http://localhost:5000/v2",
		"127.0.0.1:5000":        "http://127.0.0.1:5000/v2",
		"insecure.example:8080": "http://insecure.example:8080/v2",
	} {
		eps, err := s.endpoints(domain)
		if err != nil || !slices.Equal(epStrings(eps), []string{want}) {
			t.Errorf("%s: %v, %v; want [%s]", domain, epStrings(eps), err, want)
		}
	}
}

func TestPullThroughMirror(t *testing.T) {
	host := newRegistry(t, nil)
	img := imageOf(t, layerOf(t, []entry{{name: "pause", body: "p", mode: 0o755}}))
	// The mirror holds the image under the upstream's repository path.
	mdig := push(t, host+"/pause:3.9", img)

	// A mirror that is down: a port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()

	certsd := t.TempDir()
	writeHosts(t, certsd, "registry.k8s.io", `
server = "http://`+host+`"
[host."http://`+down+`"]
  capabilities = ["pull", "resolve"]
[host."http://`+host+`"]
  capabilities = ["pull", "resolve"]
`)
	s := newStore(t, Config{ConfigPath: certsd})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := s.Pull(ctx, "registry.k8s.io/pause:3.9", nil)
	if err != nil {
		t.Fatalf("Pull through mirror: %v", err)
	}
	if !slices.Equal(got.RepoTags, []string{"registry.k8s.io/pause:3.9"}) {
		t.Errorf("RepoTags = %v, want the upstream name", got.RepoTags)
	}
	if !slices.Equal(got.RepoDigests, []string{"registry.k8s.io/pause@" + mdig.String()}) {
		t.Errorf("RepoDigests = %v", got.RepoDigests)
	}
	if _, err := s.Resolve("registry.k8s.io/pause:3.9"); err != nil {
		t.Errorf("Resolve: %v", err)
	}

	// Only listed hosts are tried: with every listed host down the pull
	// fails instead of reaching registry.k8s.io.
	writeHosts(t, certsd, "registry.k8s.io", `
server = "http://`+down+`"
[host."http://`+down+`"]
`)
	if _, err := s.Pull(ctx, "registry.k8s.io/pause:3.10", nil); err == nil {
		t.Error("pull succeeded with every listed host down")
	}
}

func TestMirrorAPIPath(t *testing.T) {
	// The mirror serves the registry API under /mirror/v2, not /v2.
	// After the push, requests outside /mirror get 404.
	var strict atomic.Bool
	host := newRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p, ok := strings.CutPrefix(r.URL.Path, "/mirror"); ok {
				r.URL.Path = p
			} else if strict.Load() {
				http.NotFound(w, r)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	img := imageOf(t, layerOf(t, []entry{{name: "f", body: "f"}}))
	push(t, host+"/lib/app:1", img)
	strict.Store(true)
	for name, conf := range map[string]string{
		"path":          `server = "http://` + host + `/mirror"`,
		"override_path": "server = \"http://" + host + "/mirror/v2\"\noverride_path = true",
	} {
		t.Run(name, func(t *testing.T) {
			certsd := t.TempDir()
			writeHosts(t, certsd, "example.com", conf)
			s := newStore(t, Config{ConfigPath: certsd})
			if _, err := s.Pull(context.Background(), "example.com/lib/app:1", nil); err != nil {
				t.Fatalf("Pull: %v", err)
			}
		})
	}
}
