package kubepod

import (
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Objects are the ConfigMaps and Secrets a manifest carries beside its
// Pods, which its Pods' env, envFrom and volumes may name: what an API
// server would hold, for the one namespace-by-name lookup kubelet makes.
type Objects struct {
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
}

func objectKey(namespace, name string) string {
	if namespace == "" {
		namespace = "default"
	}
	return namespace + "/" + name
}

func (o *Objects) addConfigMap(cm *corev1.ConfigMap) error {
	if o.configMaps == nil {
		o.configMaps = map[string]*corev1.ConfigMap{}
	}
	k := objectKey(cm.Namespace, cm.Name)
	if cm.Name == "" {
		return fmt.Errorf("ConfigMap: metadata.name is required")
	}
	if _, dup := o.configMaps[k]; dup {
		return fmt.Errorf("ConfigMap %s is in the manifest twice", k)
	}
	for key := range cm.BinaryData {
		if _, both := cm.Data[key]; both {
			return fmt.Errorf("ConfigMap %s: key %q is in both data and binaryData", k, key)
		}
	}
	o.configMaps[k] = cm
	return nil
}

// addSecret keeps a Secret as the API server stores it: stringData merged
// into data, winning over a data key of the same name.
func (o *Objects) addSecret(s *corev1.Secret) error {
	if o.secrets == nil {
		o.secrets = map[string]*corev1.Secret{}
	}
	k := objectKey(s.Namespace, s.Name)
	if s.Name == "" {
		return fmt.Errorf("Secret: metadata.name is required")
	}
	if _, dup := o.secrets[k]; dup {
		return fmt.Errorf("Secret %s is in the manifest twice", k)
	}
	if len(s.StringData) > 0 {
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		for key, v := range s.StringData {
			s.Data[key] = []byte(v)
		}
		s.StringData = nil
	}
	o.secrets[k] = s
	return nil
}

// configMapData is a ConfigMap's keys and values (data and binaryData).
func (o *Objects) configMapData(namespace, name string) (map[string][]byte, bool) {
	if o == nil {
		return nil, false
	}
	cm, ok := o.configMaps[objectKey(namespace, name)]
	if !ok {
		return nil, false
	}
	out := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		out[k] = []byte(v)
	}
	maps.Copy(out, cm.BinaryData)
	return out, true
}

func (o *Objects) secretData(namespace, name string) (map[string][]byte, bool) {
	if o == nil {
		return nil, false
	}
	s, ok := o.secrets[objectKey(namespace, name)]
	if !ok {
		return nil, false
	}
	return s.Data, true
}

// lookup is the keys and values of the ConfigMap or Secret (kind) named,
// the one lookup every reference makes: found is false for an optional
// one that is absent; a required one that is absent is kubelet's error.
func (o *Objects) lookup(kind, namespace, name string, optional bool) (values map[string][]byte, found bool, err error) {
	data := o.configMapData
	if kind == "Secret" {
		data = o.secretData
	}
	values, found = data(namespace, name)
	if !found && !optional {
		return nil, false, fmt.Errorf("%s %q not found (it is neither in the manifest nor optional)", strings.ToLower(kind), name)
	}
	return values, found, nil
}

// missingKey is kubelet's error for a key the object lacks.
func missingKey(key, kind, namespace, name string) error {
	return fmt.Errorf("couldn't find key %s in %s %s/%s", key, kind, namespace, name)
}

// keyRef resolves env.valueFrom's configMapKeyRef or secretKeyRef as
// kubelet does: a missing object or key is kubelet's error, unless the
// reference is optional, when the variable is left out (set false).
func (t *translator) keyRef(namespace string, src *corev1.EnvVarSource) (value string, set bool, err error) {
	kind, name, key, optional := "ConfigMap", "", "", false
	if r := src.ConfigMapKeyRef; r != nil {
		name, key, optional = r.Name, r.Key, r.Optional != nil && *r.Optional
	} else {
		r := src.SecretKeyRef
		kind, name, key, optional = "Secret", r.Name, r.Key, r.Optional != nil && *r.Optional
	}
	values, found, err := t.opts.Objects.lookup(kind, namespace, name, optional)
	if err != nil || !found {
		return "", false, err
	}
	v, ok := values[key]
	if !ok {
		if optional {
			return "", false, nil
		}
		return "", false, missingKey(key, kind, namespace, name)
	}
	return string(v), true, nil
}

// envFromSource is the variables of one envFrom entry, its keys sorted (as
// kubelet sets them), each with the entry's prefix; keys that cannot be
// variable names are left out and returned as skipped.
func (t *translator) envFromSource(namespace string, src corev1.EnvFromSource) (vars [][2]string, skipped []string, err error) {
	kind, name, optional := "ConfigMap", "", false
	switch {
	case src.ConfigMapRef != nil:
		name, optional = src.ConfigMapRef.Name, src.ConfigMapRef.Optional != nil && *src.ConfigMapRef.Optional
	case src.SecretRef != nil:
		kind, name, optional = "Secret", src.SecretRef.Name, src.SecretRef.Optional != nil && *src.SecretRef.Optional
	default:
		return nil, nil, fmt.Errorf("neither configMapRef nor secretRef is set")
	}
	values, found, err := t.opts.Objects.lookup(kind, namespace, name, optional)
	if err != nil || !found {
		return nil, nil, err
	}
	for _, k := range slices.Sorted(maps.Keys(values)) {
		n := src.Prefix + k
		// kubelet 1.37 takes any printable name without "=" (relaxed
		// environment variable validation, GA).
		if n == "" || strings.ContainsAny(n, "=") || strings.IndexFunc(n, func(r rune) bool { return r < ' ' || r > '~' }) >= 0 {
			skipped = append(skipped, k)
			continue
		}
		vars = append(vars, [2]string{n, string(values[k])})
	}
	return vars, skipped, nil
}

// volumeFiles are the files of a configMap, secret or projected volume as
// kubelet writes them: every key, or the items named (key, path, mode),
// with the source's defaultMode (0644) where an item sets none. secret
// says a Secret is among the sources: the volume is then a tmpfs. A
// missing object or key fails the pod with kubelet's error unless the
// source is optional (an absent optional source adds nothing).
func (t *translator) volumeFiles(v corev1.Volume, field string) (files []VolumeFile, secret bool, err error) {
	ns := t.pod.Namespace
	type source struct {
		kind, name, field string
		items             []corev1.KeyToPath
		optional          bool
	}
	opt := func(b *bool) bool { return b != nil && *b }
	var srcs []source
	defaultMode := int32(0o644)
	switch {
	case v.ConfigMap != nil:
		c := v.ConfigMap
		srcs = append(srcs, source{"ConfigMap", c.Name, field + ".configMap", c.Items, opt(c.Optional)})
		if c.DefaultMode != nil {
			defaultMode = *c.DefaultMode
		}
	case v.Secret != nil:
		c := v.Secret
		srcs = append(srcs, source{"Secret", c.SecretName, field + ".secret", c.Items, opt(c.Optional)})
		if c.DefaultMode != nil {
			defaultMode = *c.DefaultMode
		}
	default:
		if v.Projected.DefaultMode != nil {
			defaultMode = *v.Projected.DefaultMode
		}
		for i, ps := range v.Projected.Sources {
			f := fmt.Sprintf("%s.projected.sources[%d]", field, i)
			switch {
			case ps.ConfigMap != nil:
				srcs = append(srcs, source{"ConfigMap", ps.ConfigMap.Name, f + ".configMap", ps.ConfigMap.Items, opt(ps.ConfigMap.Optional)})
			case ps.Secret != nil:
				srcs = append(srcs, source{"Secret", ps.Secret.Name, f + ".secret", ps.Secret.Items, opt(ps.Secret.Optional)})
			default:
				t.ws.add(f, "only configMap and secret sources are projected by husk pod run (tokens, the downward API and cluster trust bundles need a cluster); source skipped")
			}
		}
	}
	seen := map[string]string{}
	for _, s := range srcs {
		secret = secret || s.kind == "Secret"
		values, found, err := t.opts.Objects.lookup(s.kind, ns, s.name, s.optional)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", s.field, err)
		}
		if !found {
			continue
		}
		items := s.items
		if len(items) == 0 {
			for _, k := range slices.Sorted(maps.Keys(values)) {
				items = append(items, corev1.KeyToPath{Key: k, Path: k})
			}
		}
		for j, it := range items {
			val, ok := values[it.Key]
			if !ok {
				if s.optional {
					continue
				}
				return nil, false, fmt.Errorf("%s.items[%d]: %w", s.field, j, missingKey(it.Key, s.kind, ns, s.name))
			}
			p := path.Clean(it.Path)
			if it.Path == "" || path.IsAbs(p) || p == "." || p == ".." || strings.HasPrefix(p, "../") {
				return nil, false, fmt.Errorf("%s.items[%d].path: %q must be a relative path inside the volume", s.field, j, it.Path)
			}
			if other, dup := seen[p]; dup {
				return nil, false, fmt.Errorf("%s.items[%d].path: %s is written by %s too", s.field, j, p, other)
			}
			seen[p] = s.field
			mode := defaultMode
			if it.Mode != nil {
				mode = *it.Mode
			}
			if mode < 0 || mode > 0o777 {
				return nil, false, fmt.Errorf("%s: mode %#o is not a file mode", s.field, mode)
			}
			files = append(files, VolumeFile{Path: p, Data: val, Mode: os.FileMode(mode)})
		}
	}
	return files, secret, nil
}
