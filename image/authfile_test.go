package image

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func writeAuthFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFileAuthKeys(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	p := writeAuthFile(t, `{"auths": {
		"https://index.docker.io/v1/": {"auth": "`+b64("hub:h")+`"},
		"quay.io": {"username": "quay", "password": "q"},
		"quay.io/team": {"username": "team", "password": "t"},
		"quay.io/team/app": {"username": "app", "password": "a"},
		"http://127.0.0.1:5000": {"auth": "`+b64("local:l")+`"},
		"127.0.0.1:5000": {"auth": "`+b64("plain:p")+`"},
		"empty.example": {}
	}}`)
	s := &Store{authFile: p}
	for _, tc := range []struct {
		repo  string
		hosts []string
		want  string // username, or Auth for the "auth" field; "" for none
	}{
		{"library/busybox", []string{"registry-1.docker.io"}, b64("hub:h")},
		{"library/busybox", []string{"mirror.local:5000", "docker.io"}, b64("hub:h")},
		{"other/x", []string{"quay.io"}, "quay"},
		{"team/x", []string{"quay.io"}, "team"},
		{"team/app", []string{"quay.io"}, "app"},
		{"team/app/sub", []string{"quay.io"}, "app"},
		{"teamx/y", []string{"quay.io"}, "quay"}, // a namespace is a whole path segment
		{"x", []string{"127.0.0.1:5000"}, b64("plain:p")},
		{"x", []string{"127.0.0.1:5001"}, ""},
		{"x", []string{"gcr.io"}, ""},
	} {
		a, err := s.fileAuth(tc.repo, tc.hosts...)
		if err != nil {
			t.Errorf("%s on %v: %v", tc.repo, tc.hosts, err)
			continue
		}
		got := ""
		if a != nil {
			got = a.Username
			if got == "" {
				got = a.Auth
			}
		}
		if got != tc.want {
			t.Errorf("%s on %v: credentials %q, want %q", tc.repo, tc.hosts, got, tc.want)
		}
	}
	if _, err := s.fileAuth("x", "empty.example"); err == nil || !strings.Contains(err.Error(), "empty.example") {
		t.Errorf("entry without credentials: err = %v, want one naming the entry", err)
	}

	// Missing file or none configured: no credentials, no error.
	for _, s := range []*Store{{authFile: filepath.Join(t.TempDir(), "none.json")}, {}} {
		if a, err := s.fileAuth("x", "quay.io"); a != nil || err != nil {
			t.Errorf("auth file %q: got %v, %v; want nothing", s.authFile, a, err)
		}
	}
	bad := writeAuthFile(t, `{"auths": `)
	if _, err := (&Store{authFile: bad}).fileAuth("x", "quay.io"); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("malformed auth file: err = %v, want one naming %s", err, bad)
	}
}

// A pull whose request carries no credentials takes them from the auth
// file; credentials in the request win over the file's.
func TestPullCredentialsFromAuthFile(t *testing.T) {
	const user, pass = "husk", "s3cret"
	host := basicAuthRegistry(t, user, pass)
	img := imageOf(t, layerOf(t, []entry{{name: "x", body: "x"}}))
	push(t, host+"/private:1", img, remote.WithAuth(&authn.Basic{Username: user, Password: pass}))
	authFile := writeAuthFile(t, `{"auths": {"http://`+host+`": {"auth": "`+
		base64.StdEncoding.EncodeToString([]byte(user+":"+pass))+`"}}}`)
	s := newStore(t, Config{AuthFile: authFile})
	ctx := context.Background()
	if _, err := s.Pull(ctx, host+"/private:1", nil); err != nil {
		t.Fatalf("pull with credentials from %s: %v", authFile, err)
	}
	if _, err := s.Pull(ctx, host+"/private:1", &Auth{Username: user, Password: "wrong"}); err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Errorf("pull with a wrong password in the request: err = %v, want the registry's UNAUTHORIZED (the request's credentials win)", err)
	}
}
