package image

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
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
	return t.base.RoundTrip(req)
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
