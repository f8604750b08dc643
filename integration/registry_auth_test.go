package integration

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/husk-runtime/husk/integration/testenv"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	regUser = "husk"
	regPass = "s3cret-pass"
)

// authFailed are the codes a credentials failure may carry: kubelet tells
// them apart from a missing image (NotFound) and a rate limit
// (ResourceExhausted).
var authFailed = []codes.Code{codes.Unauthenticated, codes.PermissionDenied}

// A docker-registry with htpasswd (basic) auth: the right credentials pull,
// in the request's username/password or docker "auth" field or, when the
// request has none, from the auth file; a wrong password or none is an
// Unauthenticated error naming the registry, with the registry's message.
func TestRegistryBasicAuth(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte(regPass), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(regUser+":"+string(hash)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := startRegistryWith(t, testenv.RegistryOptions{
		Auth: fmt.Sprintf("  htpasswd:\n    realm: husk-test\n    path: %s\n", htpasswd),
	})
	ref := reg.Addr + "/private/busybox:1"
	pushWith(t, busyboxImage(t), ref, &authn.Basic{Username: regUser, Password: regPass})

	d := StartDaemonWith(t, DaemonOptions{NoDefaultNetwork: true})
	b64 := func(u, p string) string { return base64.StdEncoding.EncodeToString([]byte(u + ":" + p)) }

	_, err = pullWith(t, d, ref, nil)
	// docker-registry's own words for a request without valid credentials.
	expectPullError(t, "pull without credentials", err, authFailed, reg.Addr, "authentication required")
	_, err = pullWith(t, d, ref, &runtimeapi.AuthConfig{Username: regUser, Password: "wrong"})
	expectPullError(t, "pull with a wrong password", err, authFailed, reg.Addr, "authentication required")
	if imageTagged(t, d, ref) {
		t.Fatalf("failed pulls left %s behind", ref)
	}

	for _, c := range []struct {
		what string
		auth *runtimeapi.AuthConfig
	}{
		{"username and password", &runtimeapi.AuthConfig{Username: regUser, Password: regPass}},
		{"docker auth field", &runtimeapi.AuthConfig{Auth: b64(regUser, regPass)}},
	} {
		if _, err := pullWith(t, d, ref, c.auth); err != nil {
			t.Errorf("pull with %s: %v", c.what, err)
			continue
		}
		if !imageTagged(t, d, ref) {
			t.Errorf("pull with %s: %s not listed", c.what, ref)
			continue
		}
		removeImage(t, d, ref)
	}

	// No credentials in the request: the daemon's auth file (docker's
	// config.json layout, key as `docker login` writes it) supplies them.
	writeAuth := func(pass string) {
		t.Helper()
		body := fmt.Sprintf(`{"auths": {"http://%s": {"auth": %q}}}`, reg.Addr, b64(regUser, pass))
		if err := os.WriteFile(d.AuthFile, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeAuth(regPass)
	if _, err := pullWith(t, d, ref, nil); err != nil {
		t.Errorf("pull with credentials from the auth file: %v", err)
	} else if !imageTagged(t, d, ref) {
		t.Errorf("pull with credentials from the auth file: %s not listed", ref)
	}
	// Credentials in the request win over the file's.
	_, err = pullWith(t, d, ref, &runtimeapi.AuthConfig{Username: regUser, Password: "wrong"})
	expectPullError(t, "pull with a wrong password in the request and a good auth file", err, authFailed, reg.Addr)
	// The file is read at each pull: a wrong password there fails now.
	writeAuth("wrong")
	_, err = pullWith(t, d, ref, nil)
	expectPullError(t, "pull with a wrong password in the auth file", err, authFailed, reg.Addr, "authentication required")
}

// tokenServer is a distribution token server (the "realm" of a registry
// with token auth) on 127.0.0.1: it checks basic-auth credentials and
// issues ES256 JWTs granting the scopes asked for.
type tokenServer struct {
	*httptest.Server
	key      *ecdsa.PrivateKey
	kid      string
	service  string
	issuer   string
	mu       sync.Mutex
	issued   []string // scopes of the tokens issued
	refusals int
}

func newTokenServer(t testing.TB, service, issuer string) (*tokenServer, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: issuer},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "token-ca.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	ts := &tokenServer{key: key, kid: libtrustKeyID(t, &key.PublicKey), service: service, issuer: issuer}
	ts.Server = httptest.NewServer(http.HandlerFunc(ts.serveToken))
	t.Cleanup(ts.Close)
	return ts, bundle
}

// libtrustKeyID is the "kid" docker-registry 2.8 looks its trusted keys up
// by: the SHA-256 of the DER public key, truncated to 240 bits, base32, in
// 12 groups of 4 joined by ':' (the distribution token spec, jwt.md).
func libtrustKeyID(t testing.TB, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	s := strings.TrimRight(base32.StdEncoding.EncodeToString(sum[:30]), "=")
	var groups []string
	for i := 0; i < len(s); i += 4 {
		groups = append(groups, s[i:i+4])
	}
	return strings.Join(groups, ":")
}

func (ts *tokenServer) serveToken(w http.ResponseWriter, r *http.Request) {
	if u, p, ok := r.BasicAuth(); !ok || u != regUser || p != regPass {
		ts.mu.Lock()
		ts.refusals++
		ts.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"details":"husk-test token server: incorrect username or password"}`))
		return
	}
	if r.URL.Query().Get("service") != ts.service {
		http.Error(w, "unknown service", http.StatusBadRequest)
		return
	}
	type access struct {
		Type    string   `json:"type"`
		Name    string   `json:"name"`
		Actions []string `json:"actions"`
	}
	acc := []access{}
	scopes := r.URL.Query()["scope"]
	for _, sc := range scopes {
		// repository:<name>:<action,action>; a name has no ':' (no host).
		typ, rest, ok1 := strings.Cut(sc, ":")
		i := strings.LastIndex(rest, ":")
		if !ok1 || i < 0 {
			http.Error(w, "bad scope "+sc, http.StatusBadRequest)
			return
		}
		acc = append(acc, access{Type: typ, Name: rest[:i], Actions: strings.Split(rest[i+1:], ",")})
	}
	now := time.Now()
	jti := make([]byte, 8)
	_, _ = rand.Read(jti)
	claims := map[string]any{
		"iss": ts.issuer, "sub": regUser, "aud": ts.service,
		"exp": now.Add(5 * time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(),
		"jti": hex.EncodeToString(jti), "access": acc,
	}
	tok, err := ts.sign(claims)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ts.mu.Lock()
	ts.issued = append(ts.issued, strings.Join(scopes, " "))
	ts.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "access_token": tok, "expires_in": 300, "issued_at": now.UTC().Format(time.RFC3339)})
}

// sign makes a compact JWS (ES256: r and s, 32 bytes each).
func (ts *tokenServer) sign(claims map[string]any) (string, error) {
	hdr, err := json.Marshal(map[string]string{"typ": "JWT", "alg": "ES256", "kid": ts.kid})
	if err != nil {
		return "", err
	}
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(hdr) + "." + enc.EncodeToString(body)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, ts.key, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + enc.EncodeToString(sig), nil
}

func (ts *tokenServer) stats() (issued []string, refusals int) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.issued...), ts.refusals
}

// A docker-registry with token auth, its realm a token server in the test:
// husk gets a bearer token with the request's username and password and
// pulls; a wrong password is an Unauthenticated error naming the registry.
func TestRegistryBearerToken(t *testing.T) {
	requireRoot(t)
	const service, issuer = "husk-test-registry", "husk-test-issuer"
	ts, bundle := newTokenServer(t, service, issuer)
	reg := startRegistryWith(t, testenv.RegistryOptions{
		Auth: fmt.Sprintf("  token:\n    realm: %s/token\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n",
			ts.URL, service, issuer, bundle),
	})
	ref := reg.Addr + "/private/busybox:1"
	pushWith(t, busyboxImage(t), ref, &authn.Basic{Username: regUser, Password: regPass})
	pushIssued, _ := ts.stats()

	d := StartDaemonWith(t, DaemonOptions{NoDefaultNetwork: true})
	_, err := pullWith(t, d, ref, &runtimeapi.AuthConfig{Username: regUser, Password: "wrong"})
	expectPullError(t, "pull with a wrong password", err, authFailed, reg.Addr, "incorrect username or password")
	if _, refusals := ts.stats(); refusals == 0 {
		t.Error("the token server refused no request: the wrong password never reached it")
	}
	_, err = pullWith(t, d, ref, nil)
	expectPullError(t, "pull without credentials", err, authFailed, reg.Addr)

	if _, err := pullWith(t, d, ref, &runtimeapi.AuthConfig{Username: regUser, Password: regPass}); err != nil {
		t.Fatalf("pull with username and password: %v", err)
	}
	if !imageTagged(t, d, ref) {
		t.Fatalf("%s not listed after the pull", ref)
	}
	issued, _ := ts.stats()
	pulls := issued[len(pushIssued):]
	found := false
	for _, sc := range pulls {
		found = found || strings.Contains(sc, "repository:private/busybox:pull")
	}
	if !found {
		t.Errorf("no token for repository:private/busybox:pull was issued to the pull; scopes issued: %q", pulls)
	}
}
