package image

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// endpointTransport pins requests to one endpoint's host to the scheme and
// API root the hosts configuration gave. go-containerregistry decides the
// scheme by itself (it tries plain HTTP for RFC 1918 addresses, say) and
// always uses /v2; this makes the configuration the only authority.
type endpointTransport struct {
	ep   endpoint
	base http.RoundTripper
}

func (t *endpointTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != t.ep.host {
		return t.base.RoundTrip(req)
	}
	req = req.Clone(req.Context())
	req.URL.Scheme = t.ep.scheme
	if t.ep.path != "/v2" && (req.URL.Path == "/v2" || strings.HasPrefix(req.URL.Path, "/v2/")) {
		req.URL.Path = t.ep.path + strings.TrimPrefix(req.URL.Path, "/v2")
		req.URL.RawPath = ""
	}
	for k, v := range t.ep.header {
		req.Header[k] = v
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil && req.URL.Scheme == "https" && clientCertRefused(err) {
		// The alert alone ("remote error: tls: bad certificate") reads as
		// if the registry's own certificate were at fault; say which
		// side's certificate the registry wants.
		if len(t.ep.clients) == 0 {
			return nil, fmt.Errorf("%w (registry %s requires a client certificate; hosts.toml gives none: \"client\")", err, t.ep.host)
		}
		return nil, fmt.Errorf("%w (registry %s refused the client certificate hosts.toml gives)", err, t.ep.host)
	}
	return resp, err
}

// clientCertRefused reports whether err is the TLS alert a server sends
// when it requires a client certificate and got none, or none it accepts:
// bad_certificate (TLS 1.2; docker-registry 2.8, built with Go 1.19, sends
// it over TLS 1.3 too) or certificate_required (TLS 1.3). With TLS 1.3 it
// arrives after the client considers the handshake done, on the first read.
func clientCertRefused(err error) bool {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return false
	}
	// crypto/tls reports a received alert as an unexported type; its text
	// is that of the exported AlertError with the same code.
	msg := op.Err.Error()
	return msg == tls.AlertError(42).Error() || msg == tls.AlertError(116).Error()
}

// transportFor returns the HTTP transport for ep, built once per distinct
// TLS setup so connections are reused across pulls.
func (s *Store) transportFor(ep endpoint) (http.RoundTripper, error) {
	key := fmt.Sprint(ep.skipVerify, ep.caFiles, ep.clients)
	s.transMu.Lock()
	defer s.transMu.Unlock()
	base, ok := s.transports[key]
	if !ok {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		// HTTP/1.1 only, as containerd's registry transports (an empty
		// TLSNextProto). Over HTTP/2, a TLS alert that comes after the
		// handshake (TLS 1.3: a registry that wants a client
		// certificate) surfaced as "http2: client conn could not be
		// established", without the alert that says why.
		tr.ForceAttemptHTTP2 = false
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		cfg, err := tlsConfig(ep)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = cfg
		if s.transports == nil {
			s.transports = make(map[string]*http.Transport)
		}
		s.transports[key] = tr
		base = tr
	}
	return &endpointTransport{ep: ep, base: base}, nil
}

func tlsConfig(ep endpoint) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: ep.skipVerify}
	if len(ep.caFiles) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		for _, f := range ep.caFiles {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("registry %s: ca: %w", ep.host, err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("registry %s: ca %s: no certificates", ep.host, f)
			}
		}
		cfg.RootCAs = pool
	}
	for _, c := range ep.clients {
		cert, err := tls.LoadX509KeyPair(c[0], c[1])
		if err != nil {
			return nil, fmt.Errorf("registry %s: client certificate %s: %w", ep.host, c[0], err)
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	return cfg, nil
}

// authenticator turns CRI credentials into go-containerregistry's. A
// docker-style "auth" field is split into user and password so that the
// token flow (not only basic auth) can use it.
func authenticator(a *Auth) (authn.Authenticator, error) {
	if a == nil || *a == (Auth{}) {
		return authn.Anonymous, nil
	}
	cfg := authn.AuthConfig{
		Username:      a.Username,
		Password:      a.Password,
		IdentityToken: a.IdentityToken,
		RegistryToken: a.RegistryToken,
	}
	if cfg.Username == "" && a.Auth != "" {
		raw, err := base64.StdEncoding.DecodeString(a.Auth)
		if err != nil {
			return nil, fmt.Errorf("decode auth: %w", err)
		}
		u, p, ok := strings.Cut(string(raw), ":")
		if !ok {
			return nil, fmt.Errorf("decode auth: no \":\" between user and password")
		}
		cfg.Username, cfg.Password = u, p
	}
	return authn.FromConfig(cfg), nil
}
