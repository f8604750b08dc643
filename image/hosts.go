package image

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

type capability uint8

const (
	capPull capability = 1 << iota
	capResolve
	capPush
	capAll = capPull | capResolve | capPush
)

// endpoint is one registry host to try for a pull, in containerd's sense.
type endpoint struct {
	scheme     string // "https" or "http"
	host       string // host[:port]
	path       string // API root, "/v2" unless the config says otherwise
	caps       capability
	skipVerify bool
	caFiles    []string
	clients    [][2]string // cert, key
	header     http.Header
}

func (e endpoint) String() string { return e.scheme + "://" + e.host + e.path }

// hostsFile is the schema of certs.d/<host>/hosts.toml.
type hostsFile struct {
	Server string `toml:"server"`
	hostFields
	Host map[string]hostFields `toml:"host"`
}

type hostFields struct {
	Capabilities []string       `toml:"capabilities"`
	CA           any            `toml:"ca"`     // path or list of paths
	Client       any            `toml:"client"` // path, [cert, key], or list of those
	SkipVerify   *bool          `toml:"skip_verify"`
	Header       map[string]any `toml:"header"`
	OverridePath bool           `toml:"override_path"`
}

// endpoints returns, in the order to try them, the hosts serving the
// registry named domain (as written in the image name, e.g. "docker.io").
//
// It follows containerd's ConfigureHosts exactly:
//   - the directory is <ConfigPath>/<domain>, else <ConfigPath>/_default;
//   - its hosts.toml lists [host."<url>"] entries, tried in file order, and
//     then the upstream given by "server";
//   - when "server" is absent the upstream is still appended as the last
//     host: https://<domain> (https://registry-1.docker.io for docker.io).
//     So a mirror alone does not keep pulls off the internet; to pull only
//     from the mirror, set "server" to the mirror's own URL;
//   - with no hosts.toml (or no directory) the upstream is the only host,
//     with any *.crt in the directory as extra CAs (docker's certs.d);
//   - a host entry without "capabilities" may pull, resolve and push.
//
// Like containerd, a registry on localhost or a loopback address is reached
// over plain HTTP when no hosts.toml says otherwise (except on port 443,
// which is HTTPS without verification); s.insecure adds more such hosts.
func (s *Store) endpoints(domain string) ([]endpoint, error) {
	var eps []endpoint
	dir := s.hostDir(domain)
	if dir != "" {
		var err error
		eps, err = loadHostDir(dir)
		if err != nil {
			return nil, err
		}
	}
	if eps == nil {
		eps = []endpoint{{caps: capAll}}
	}
	// The last entry is the upstream; fill in its defaults when the file
	// named no server.
	last := &eps[len(eps)-1]
	if last.host == "" {
		last.host = domain
		last.path = "/v2"
		last.scheme = "https"
		switch {
		case domain == "docker.io":
			last.host = "registry-1.docker.io"
		case s.insecure[domain]:
			last.scheme = "http"
		case isLocalhost(domain):
			if _, port, _ := net.SplitHostPort(domain); port == "" || port == "443" {
				last.skipVerify = true
			} else {
				last.scheme = "http"
			}
		}
	}
	return eps, nil
}

func (s *Store) hostDir(domain string) string {
	if s.configPath == "" {
		return ""
	}
	for _, d := range []string{domain, "_default"} {
		p := filepath.Join(s.configPath, d)
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p
		}
	}
	return ""
}

func isLocalhost(hostport string) bool {
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

// loadHostDir reads dir/hosts.toml, or falls back to docker's certs.d
// layout. The last endpoint returned is the upstream server, with an empty
// host when the file does not name one.
func loadHostDir(dir string) ([]endpoint, error) {
	p := filepath.Join(dir, "hosts.toml")
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		crts, _ := filepath.Glob(filepath.Join(dir, "*.crt"))
		return []endpoint{{caps: capAll, caFiles: crts}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	eps, err := parseHostsFile(dir, data)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", p, err)
	}
	return eps, nil
}

func parseHostsFile(dir string, data []byte) ([]endpoint, error) {
	var f hostsFile
	if err := toml.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	order, err := hostOrder(data)
	if err != nil {
		return nil, err
	}
	var eps []endpoint
	for _, h := range order {
		ep, err := parseHost(dir, h, f.Host[h])
		if err != nil {
			return nil, fmt.Errorf("host %q: %w", h, err)
		}
		eps = append(eps, ep)
	}
	server := endpoint{caps: capAll}
	if f.Server != "" {
		server, err = parseHost(dir, f.Server, f.hostFields)
		if err != nil {
			return nil, fmt.Errorf("server %q: %w", f.Server, err)
		}
	} else {
		fillHost(dir, &server, f.hostFields)
	}
	return append(eps, server), nil
}

// hostOrder returns the keys of the [host."..."] tables in file order:
// containerd tries mirrors in the order they are written, which a decoded
// map cannot tell.
func hostOrder(data []byte) ([]string, error) {
	var order []string
	seen := make(map[string]bool)
	var p unstable.Parser
	p.Reset(data)
	for p.NextExpression() {
		e := p.Expression()
		if e.Kind != unstable.Table && e.Kind != unstable.KeyValue {
			continue
		}
		it := e.Key()
		var parts []string
		for it.Next() {
			parts = append(parts, string(it.Node().Data))
		}
		if len(parts) >= 2 && parts[0] == "host" && !seen[parts[1]] {
			seen[parts[1]] = true
			order = append(order, parts[1])
		}
	}
	if err := p.Error(); err != nil {
		return nil, err
	}
	return order, nil
}

func parseHost(dir, server string, hf hostFields) (endpoint, error) {
	if !strings.Contains(server, "://") {
		server = "https://" + server
	}
	u, err := url.Parse(server)
	if err != nil {
		return endpoint{}, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return endpoint{}, fmt.Errorf("unsupported scheme %q", u.Scheme)
	}
	if u.Host == "" {
		return endpoint{}, errors.New("no host")
	}
	ep := endpoint{scheme: u.Scheme, host: u.Host}
	// As containerd: the API root is <path>/v2 unless override_path says
	// the path is already the full API root.
	switch {
	case u.Path != "" && u.Path != "/":
		ep.path = path.Clean(u.Path)
		if !hf.OverridePath && !strings.HasSuffix(ep.path, "/v2") {
			ep.path += "/v2"
		}
	case hf.OverridePath:
		ep.path = ""
	default:
		ep.path = "/v2"
	}
	if err := fillHost(dir, &ep, hf); err != nil {
		return endpoint{}, err
	}
	return ep, nil
}

func fillHost(dir string, ep *endpoint, hf hostFields) error {
	if hf.Capabilities == nil {
		ep.caps = capAll
	} else {
		ep.caps = 0
		for _, c := range hf.Capabilities {
			switch strings.ToLower(c) {
			case "pull":
				ep.caps |= capPull
			case "resolve":
				ep.caps |= capResolve
			case "push":
				ep.caps |= capPush
			default:
				return fmt.Errorf("unknown capability %q", c)
			}
		}
	}
	if hf.SkipVerify != nil {
		ep.skipVerify = *hf.SkipVerify
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	switch ca := hf.CA.(type) {
	case nil:
	case string:
		ep.caFiles = append(ep.caFiles, abs(ca))
	case []any:
		for _, c := range ca {
			s, ok := c.(string)
			if !ok {
				return fmt.Errorf("ca: want path, got %T", c)
			}
			ep.caFiles = append(ep.caFiles, abs(s))
		}
	default:
		return fmt.Errorf("ca: want path or list, got %T", hf.CA)
	}
	switch cl := hf.Client.(type) {
	case nil:
	case string:
		ep.clients = append(ep.clients, [2]string{abs(cl), abs(cl)})
	case []any:
		pair := func(v any) ([2]string, error) {
			switch x := v.(type) {
			case string:
				return [2]string{abs(x), abs(x)}, nil
			case []any:
				if len(x) == 2 {
					c, ok1 := x[0].(string)
					k, ok2 := x[1].(string)
					if ok1 && ok2 {
						return [2]string{abs(c), abs(k)}, nil
					}
				}
			}
			return [2]string{}, fmt.Errorf("client: bad entry %v", v)
		}
		// ["cert", "key"] is one pair; [["c","k"], ...] or ["c1", "c2"]
		// (combined files) are several.
		if len(cl) == 2 {
			if c, ok := cl[0].(string); ok {
				if k, ok := cl[1].(string); ok && !strings.HasSuffix(k, ".crt") && !strings.HasSuffix(k, ".cert") {
					ep.clients = append(ep.clients, [2]string{abs(c), abs(k)})
					break
				}
			}
		}
		for _, v := range cl {
			pr, err := pair(v)
			if err != nil {
				return err
			}
			ep.clients = append(ep.clients, pr)
		}
	default:
		return fmt.Errorf("client: want path or list, got %T", hf.Client)
	}
	if len(hf.Header) > 0 {
		ep.header = make(http.Header)
		for k, v := range hf.Header {
			switch x := v.(type) {
			case string:
				ep.header.Add(k, x)
			case []any:
				for _, s := range x {
					ep.header.Add(k, fmt.Sprint(s))
				}
			default:
				return fmt.Errorf("header %s: want string or list, got %T", k, v)
			}
		}
	}
	return nil
}

// CheckHostDir parses dir/hosts.toml (or accepts docker's certs.d layout
// when there is none) exactly as a pull would, so that `husk doctor` finds
// a broken mirror config before a pull does.
func CheckHostDir(dir string) error {
	_, err := loadHostDir(dir)
	return err
}
