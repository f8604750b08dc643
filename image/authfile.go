package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
)

// authFileConfig is the part of docker's config.json (the same "auths"
// layout as podman's auth.json) husk reads. Credential helpers
// ("credsStore", "credHelpers") are not run: the daemon would execute
// whatever program the file names, as root.
type authFileConfig struct {
	Auths map[string]authFileEntry `json:"auths"`
}

type authFileEntry struct {
	Auth          string `json:"auth"` // base64 "user:password"
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// fileAuth returns the credentials the auth file holds for repository
// repo (path inside the registry, "library/busybox") on the first of hosts
// it has an entry for; nil when the file does not exist, is not configured
// or has no entry. The file is read at every call so that an operator's
// edit takes effect on the next pull, as docker and crictl read theirs.
//
// Keys are matched the way docker and podman do:
//   - "host[:port]", or a URL "https://host[:port]/anything" (docker's
//     older form, e.g. "https://index.docker.io/v1/"), names a registry;
//   - "host[:port]/namespace[/...]" (podman's form) names repositories
//     under that path and wins over the plain host entry; the longest
//     matching namespace wins;
//   - docker.io, index.docker.io and registry-1.docker.io are one registry.
func (s *Store) fileAuth(repo string, hosts ...string) (*Auth, error) {
	if s.authFile == "" {
		return nil, nil
	}
	data, err := os.ReadFile(s.authFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("registry auth file: %w", err)
	}
	var cfg authFileConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("registry auth file %s: %w", s.authFile, err)
	}
	// Index the entries by normalized key. When one registry is written
	// in two forms ("quay.io" and "https://quay.io"), the plain form wins,
	// else the first in sorted order, so the choice never depends on map
	// order.
	keys := make([]string, 0, len(cfg.Auths))
	for k := range cfg.Auths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	byKey := make(map[string]authFileEntry, len(keys))
	for _, k := range keys {
		nk := normalizeAuthKey(k)
		if _, dup := byKey[nk]; !dup || k == nk {
			byKey[nk] = cfg.Auths[k]
		}
	}
	for _, h := range hosts {
		h = canonicalRegistry(h)
		// Most specific first: host/a/b, host/a, host.
		p := repo
		for {
			key := h
			if p != "" {
				key = h + "/" + p
			}
			if e, ok := byKey[key]; ok {
				a := &Auth{Username: e.Username, Password: e.Password, Auth: e.Auth,
					IdentityToken: e.IdentityToken, RegistryToken: e.RegistryToken}
				if *a == (Auth{}) {
					return nil, fmt.Errorf("registry auth file %s: entry %q holds no credentials", s.authFile, key)
				}
				return a, nil
			}
			if p == "" {
				break
			}
			if i := strings.LastIndex(p, "/"); i >= 0 {
				p = p[:i]
			} else {
				p = ""
			}
		}
	}
	return nil, nil
}

// normalizeAuthKey turns an "auths" key into "host[/namespace]": a URL
// loses its scheme and path, as docker's ConvertToHostname does.
func normalizeAuthKey(k string) string {
	k = strings.TrimSpace(k)
	if i := strings.Index(k, "://"); i >= 0 {
		k = k[i+3:]
		if j := strings.Index(k, "/"); j >= 0 {
			k = k[:j]
		}
		return canonicalRegistry(k)
	}
	k = strings.TrimSuffix(k, "/")
	host, ns, _ := strings.Cut(k, "/")
	if ns != "" {
		return canonicalRegistry(host) + "/" + ns
	}
	return canonicalRegistry(host)
}

// canonicalRegistry maps Docker Hub's several host names to one.
func canonicalRegistry(h string) string {
	switch h {
	case "index.docker.io", "registry-1.docker.io":
		return "docker.io"
	}
	return h
}
