package kubepod

// imagePullSecrets from the manifest's Secrets, as kubelet uses them
// (pkg/credentialprovider in 1.37): a kubernetes.io/dockerconfigjson
// Secret's .dockerconfigjson {"auths": {...}} or a kubernetes.io/dockercfg
// Secret's .dockercfg {...}, each entry keyed by a registry, optionally
// with a path prefix and a scheme; an image takes the credentials of the
// most specific key that matches its registry and repository.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// dockerAuth is one entry of a docker config.
type dockerAuth struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Auth     string `json:"auth"` // base64 of user:password
}

// pullKeyring is the pod's pull credentials, by normalized key.
type pullKeyring map[string]dockerAuth

// pullKeyring reads the pod's imagePullSecrets; a Secret that is absent
// or of another type is a warning (kubelet pulls without it, after
// logging the same).
func (t *translator) pullKeyring() pullKeyring {
	kr := pullKeyring{}
	for i, ref := range t.pod.Spec.ImagePullSecrets {
		field := fmt.Sprintf("spec.imagePullSecrets[%d]", i)
		data, found := t.opts.Objects.secretData(t.pod.Namespace, ref.Name)
		if !found {
			t.ws.add(field, fmt.Sprintf("secret %q is not in the manifest; images are pulled without it", ref.Name))
			continue
		}
		var auths map[string]dockerAuth
		var err error
		switch {
		case data[corev1.DockerConfigJsonKey] != nil:
			var cfg struct {
				Auths map[string]dockerAuth `json:"auths"`
			}
			err = json.Unmarshal(data[corev1.DockerConfigJsonKey], &cfg)
			auths = cfg.Auths
		case data[corev1.DockerConfigKey] != nil:
			err = json.Unmarshal(data[corev1.DockerConfigKey], &auths)
		default:
			err = fmt.Errorf("it has neither %s nor %s", corev1.DockerConfigJsonKey, corev1.DockerConfigKey)
		}
		if err != nil {
			t.ws.add(field, fmt.Sprintf("secret %q: %v; images are pulled without it", ref.Name, err))
			continue
		}
		for k, a := range auths {
			if a.Auth != "" && a.Username == "" {
				if b, err := base64.StdEncoding.DecodeString(a.Auth); err == nil {
					a.Username, a.Password, _ = strings.Cut(string(b), ":")
				}
			}
			if _, dup := kr[normalizeRegistryKey(k)]; !dup { // the first secret wins, as kubelet's keyring
				kr[normalizeRegistryKey(k)] = a
			}
		}
	}
	return kr
}

// normalizeRegistryKey drops the scheme and trailing slash, and maps
// Docker Hub's historical keys to docker.io.
func normalizeRegistryKey(k string) string {
	k = strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://")
	k = strings.TrimSuffix(k, "/")
	switch k {
	case "index.docker.io/v1", "index.docker.io", "registry-1.docker.io", "docker.io":
		return "docker.io"
	}
	return k
}

// lookup finds the credentials for image: the longest key that is the
// image's registry, or its registry and a path prefix of its repository.
func (kr pullKeyring) lookup(image string) *runtimeapi.AuthConfig {
	if len(kr) == 0 {
		return nil
	}
	name, _, _ := strings.Cut(image, "@")
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	host, repo, ok := strings.Cut(name, "/")
	if !ok || (!strings.ContainsAny(host, ".:") && host != "localhost") {
		host, repo = "docker.io", name
	}
	if host == "index.docker.io" || host == "registry-1.docker.io" {
		host = "docker.io"
	}
	full := host + "/" + repo
	keys := make([]string, 0, len(kr))
	for k := range kr {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, k := range keys {
		if k == host || full == k || strings.HasPrefix(full, k+"/") {
			a := kr[k]
			return &runtimeapi.AuthConfig{Username: a.Username, Password: a.Password, ServerAddress: host}
		}
	}
	return nil
}
