package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/husk-runtime/husk/integration/testenv"
	"google.golang.org/grpc/codes"
)

// testPKI is a CA made for one test, a server certificate it signed for
// 127.0.0.1 and a client certificate it signed, all as PEM files in Dir.
type testPKI struct {
	Dir                   string
	CA                    string // ca.pem
	ServerCert, ServerKey string
	ClientCert, ClientKey string
	pool                  *x509.CertPool
	client                tls.Certificate
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	p := &testPKI{Dir: t.TempDir(), pool: x509.NewCertPool()}
	writePEM := func(file, typ string, der []byte) string {
		t.Helper()
		path := filepath.Join(p.Dir, file)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	newKey := func() *ecdsa.PrivateKey {
		t.Helper()
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "husk-test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p.pool.AddCert(caCert)
	p.CA = writePEM("ca.pem", "CERTIFICATE", caDER)

	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP, certFile, keyFile string) (string, string) {
		t.Helper()
		key := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return writePEM(certFile, "CERTIFICATE", der), writePEM(keyFile, "PRIVATE KEY", kder)
	}
	p.ServerCert, p.ServerKey = issue(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")}, "server.pem", "server-key.pem")
	p.ClientCert, p.ClientKey = issue(3, "husk-test client", x509.ExtKeyUsageClientAuth, nil, "client.pem", "client-key.pem")
	p.client, err = tls.LoadX509KeyPair(p.ClientCert, p.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startTLSRegistry starts a docker-registry serving HTTPS with the PKI's
// server certificate; with clientCerts it requires a client certificate
// signed by the PKI's CA.
func startTLSRegistry(t testing.TB, p *testPKI, clientCerts bool) *testenv.Registry {
	t.Helper()
	opts := testenv.RegistryOptions{
		TLSCert:   p.ServerCert,
		TLSKey:    p.ServerKey,
		ClientTLS: &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12},
	}
	if clientCerts {
		opts.ClientCAs = []string{p.CA}
		opts.ClientTLS.Certificates = []tls.Certificate{p.client}
	}
	return startRegistryWith(t, opts)
}

// pushTLS pushes img to ref on a registry serving HTTPS, trusting (and
// presenting) what reg.TLS says.
func pushTLS(t testing.TB, reg *testenv.Registry, img v1.Image, ref string) {
	t.Helper()
	r, err := name.ParseReference(ref, name.StrictValidation)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: reg.TLS.Clone()}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := remote.Write(r, img, remote.WithContext(ctx), remote.WithTransport(tr)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// copyFile copies src into dir, keeping its name.
func copyFile(t testing.TB, src, dir string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(src)), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Registries serving HTTPS with a certificate of a private CA, as on-prem
// registries do, configured the containerd way in
// certs.d/<host:port>/hosts.toml: without `ca` the pull fails naming the
// registry and the untrusted certificate; with `ca` it pulls; with
// `skip_verify` it pulls without the CA; a registry that requires client
// certificates refuses a pull without `client` and serves one with it.
func TestRegistryTLS(t *testing.T) {
	requireRoot(t)
	pki := newTestPKI(t)
	reg := startTLSRegistry(t, pki, false)
	mtls := startTLSRegistry(t, pki, true)
	img := busyboxImage(t)
	ref := reg.Addr + "/tls/busybox:1"
	mref := mtls.Addr + "/mtls/busybox:1"
	pushTLS(t, reg, img, ref)
	pushTLS(t, mtls, img, mref)

	d := StartDaemonWith(t, DaemonOptions{NoDefaultNetwork: true})
	// server = "https://..." because a loopback registry with a port is
	// reached over plain HTTP when no hosts.toml says otherwise.
	server := func(r *testenv.Registry) string { return fmt.Sprintf("server = %q\n", r.URL()) }
	pullOK := func(what, ref string) {
		t.Helper()
		if _, err := pullWith(t, d, ref, nil); err != nil {
			t.Errorf("%s: %v", what, err)
			return
		}
		if !imageTagged(t, d, ref) {
			t.Errorf("%s: %s not listed after the pull", what, ref)
			return
		}
		removeImage(t, d, ref)
	}
	pullFails := func(what, ref string, words ...string) {
		t.Helper()
		_, err := pullWith(t, d, ref, nil)
		expectPullError(t, what, err, []codes.Code{codes.Unknown, codes.Unavailable}, words...)
		if imageTagged(t, d, ref) {
			t.Errorf("%s: the failed pull left %s", what, ref)
		}
	}

	// (a) HTTPS, but the registry's CA is not trusted.
	writeHostsToml(t, d, reg.Addr, server(reg))
	pullFails("pull without ca", ref, reg.Addr, "certificate signed by unknown authority")

	// (b) `ca` names the private CA.
	writeHostsToml(t, d, reg.Addr, server(reg)+fmt.Sprintf("ca = %q\n", pki.CA))
	pullOK("pull with ca", ref)

	// (d) skip_verify = true: no CA, no verification.
	writeHostsToml(t, d, reg.Addr, server(reg)+"skip_verify = true\n")
	pullOK("pull with skip_verify", ref)

	// (c) The registry requires a client certificate: with the CA but no
	// `client`, the registry ends the handshake.
	writeHostsToml(t, d, mtls.Addr, server(mtls)+fmt.Sprintf("ca = %q\n", pki.CA))
	pullFails("pull without client certificate", mref, mtls.Addr, "requires a client certificate")
	// containerd's syntax: a list of [cert, key] pairs, relative to the
	// host's directory.
	hostDir := filepath.Join(d.CertsDir, mtls.Addr)
	copyFile(t, pki.ClientCert, hostDir)
	copyFile(t, pki.ClientKey, hostDir)
	writeHostsToml(t, d, mtls.Addr, server(mtls)+fmt.Sprintf("ca = %q\nclient = [[\"client.pem\", \"client-key.pem\"]]\n", pki.CA))
	pullOK("pull with client certificate", mref)
}
