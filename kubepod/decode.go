// Package kubepod turns Kubernetes Pod manifests into the CRI requests
// kubelet would send for them, so that `husk pod run` can run a Pod without
// a cluster. Everything here is a pure function of its inputs: the CLI does
// the I/O (files, pulls, RPCs) around it.
package kubepod

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Source is one Pod found in a manifest, with where it came from.
type Source struct {
	Pod *corev1.Pod
	// Origin names the document, e.g. "Pod/web" or "Deployment/web".
	Origin string
	// FieldPrefix is the path of the pod template in its document
	// ("spec.template." for a Deployment), put before the field paths of
	// warnings so they point into the file the user wrote.
	FieldPrefix string
	// Objects are the ConfigMaps and Secrets of the whole manifest, which
	// the Pod's env, envFrom and volumes may name (Options.Objects).
	Objects *Objects
	// Warnings found while decoding (unknown fields, a workload's
	// replicas ignored), already prefixed.
	Warnings []Warning
}

// typeMeta and the workload shapes: only the pod template is read from a
// workload, so decoding into these small structs avoids pulling in every
// apps/batch type.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

type workload struct {
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		Template    *corev1.PodTemplateSpec `json:"template"`
		JobTemplate *struct {
			Spec struct {
				Template *corev1.PodTemplateSpec `json:"template"`
			} `json:"spec"`
		} `json:"jobTemplate"`
	} `json:"spec"`
}

type list struct {
	Items []json.RawMessage `json:"items"`
}

// templateKinds are the workloads whose pod template `husk pod run` runs
// once, and where the template is.
var templateKinds = map[string]string{
	"Deployment":            "spec.template.",
	"StatefulSet":           "spec.template.",
	"DaemonSet":             "spec.template.",
	"ReplicaSet":            "spec.template.",
	"ReplicationController": "spec.template.",
	"Job":                   "spec.template.",
	"CronJob":               "spec.jobTemplate.spec.template.",
	"PodTemplate":           "template.",
}

// Decode reads every YAML or JSON document of a manifest and returns the
// Pods to run: each Pod, and the pod template of each workload, with the
// manifest's ConfigMaps and Secrets (in any document, before or after the
// Pods). Documents of other kinds are reported as warnings, not errors, so
// a file that also holds a Service still runs its Pods.
func Decode(r io.Reader) ([]Source, []Warning, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	objs := &Objects{}
	var out []Source
	var warns []Warning
	for doc := 1; ; doc++ {
		data, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read document %d: %w", doc, err)
		}
		if len(bytes.TrimSpace(stripComments(data))) == 0 {
			doc--
			continue
		}
		srcs, w, err := decodeDocument(data, fmt.Sprintf("document %d", doc), objs)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, srcs...)
		warns = append(warns, w...)
	}
	if len(out) == 0 {
		return nil, warns, errors.New("no Pod or workload with a pod template in the manifest")
	}
	for i := range out {
		out[i].Objects = objs
	}
	return out, warns, nil
}

func stripComments(data []byte) []byte {
	var b bytes.Buffer
	for _, l := range strings.Split(string(data), "\n") {
		if t := strings.TrimSpace(l); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func decodeDocument(data []byte, where string, objs *Objects) ([]Source, []Warning, error) {
	var tm typeMeta
	if err := yaml.Unmarshal(data, &tm); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	switch tm.Kind {
	case "Pod":
		pod := &corev1.Pod{}
		w, err := strictUnmarshal(data, pod, "")
		if err != nil {
			return nil, nil, fmt.Errorf("%s (Pod): %w", where, err)
		}
		return []Source{{Pod: pod, Origin: "Pod/" + podName(pod), Warnings: w}}, nil, nil
	case "ConfigMap":
		cm := &corev1.ConfigMap{}
		w, err := strictUnmarshal(data, cm, "")
		if err == nil {
			err = objs.addConfigMap(cm)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s (ConfigMap): %w", where, err)
		}
		return nil, prefixed(w, where), nil
	case "Secret":
		s := &corev1.Secret{}
		w, err := strictUnmarshal(data, s, "")
		if err == nil {
			err = objs.addSecret(s)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s (Secret): %w", where, err)
		}
		return nil, prefixed(w, where), nil
	case "List":
		var l list
		if err := yaml.Unmarshal(data, &l); err != nil {
			return nil, nil, fmt.Errorf("%s (List): %w", where, err)
		}
		var out []Source
		var warns []Warning
		for i, item := range l.Items {
			s, w, err := decodeDocument(item, fmt.Sprintf("%s items[%d]", where, i), objs)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, s...)
			warns = append(warns, w...)
		}
		return out, warns, nil
	}
	prefix, ok := templateKinds[tm.Kind]
	if !ok {
		kind := tm.Kind
		if kind == "" {
			kind = "a document without a kind"
		}
		return nil, []Warning{{Field: where, Message: fmt.Sprintf("%s is not a Pod or a workload with a pod template; skipped", kind)}}, nil
	}
	var wl workload
	if err := yaml.Unmarshal(data, &wl); err != nil {
		return nil, nil, fmt.Errorf("%s (%s): %w", where, tm.Kind, err)
	}
	tmpl := wl.Spec.Template
	if tm.Kind == "CronJob" {
		tmpl = nil
		if wl.Spec.JobTemplate != nil {
			tmpl = wl.Spec.JobTemplate.Spec.Template
		}
	}
	if tm.Kind == "PodTemplate" {
		var pt corev1.PodTemplate
		if err := yaml.Unmarshal(data, &pt); err != nil {
			return nil, nil, fmt.Errorf("%s (PodTemplate): %w", where, err)
		}
		tmpl = &pt.Template
		wl.Metadata.Name, wl.Metadata.Namespace = pt.Name, pt.Namespace
	}
	if tmpl == nil {
		return nil, nil, fmt.Errorf("%s (%s %s): no %s", where, tm.Kind, wl.Metadata.Name, strings.TrimSuffix(prefix, "."))
	}
	// Only the template is checked for unknown fields: the rest of the
	// workload is not used.
	w := templateUnknownFields(data, prefix)
	pod := &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec}
	if pod.Name == "" {
		pod.Name = wl.Metadata.Name
	}
	if pod.Namespace == "" {
		pod.Namespace = wl.Metadata.Namespace
	}
	origin := tm.Kind + "/" + wl.Metadata.Name
	w = append(w, Warning{Field: strings.TrimSuffix(prefix, "."), Message: fmt.Sprintf("%s: its pod template is run once, as Pod %q; replicas, selectors and rollouts need a cluster", origin, podName(pod))})
	return []Source{{Pod: pod, Origin: origin, FieldPrefix: prefix, Warnings: w}}, nil, nil
}

func podName(p *corev1.Pod) string {
	if p.Name != "" {
		return p.Name
	}
	return p.GenerateName
}

// strictUnmarshal decodes data into v; fields v has no place for are
// warnings (a misspelt field would otherwise be dropped without a word).
func strictUnmarshal(data []byte, v any, prefix string) ([]Warning, error) {
	if err := yaml.UnmarshalStrict(data, v); err == nil {
		return nil, nil
	} else if err2 := yaml.Unmarshal(data, v); err2 != nil {
		return nil, err2
	} else {
		// The decoder names the field but not where it is.
		field := strings.TrimSuffix(prefix, ".")
		if field == "" {
			field = "(pod)"
		}
		msg := err.Error()
		if i := strings.Index(msg, "unknown field"); i >= 0 {
			msg = msg[i:]
		}
		return []Warning{{Field: field, Message: msg + "; ignored"}}, nil
	}
}

// templateUnknownFields checks the pod template of a workload strictly.
func templateUnknownFields(data []byte, prefix string) []Warning {
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil
	}
	var cur any = m
	for _, k := range strings.Split(strings.TrimSuffix(prefix, "."), ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	raw, err := json.Marshal(cur)
	if err != nil {
		return nil
	}
	w, _ := strictUnmarshal(raw, &corev1.PodTemplateSpec{}, prefix)
	return w
}

// prefixed puts where (the document) before each warning's field.
func prefixed(ws []Warning, where string) []Warning {
	for i := range ws {
		ws[i].Field = where + ": " + ws[i].Field
	}
	return ws
}

// ReadObjects adds the ConfigMaps and Secrets of r (podman's --configmap
// files) to o; any other document there is reported and skipped.
func (o *Objects) ReadObjects(r io.Reader, name string) ([]Warning, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var warns []Warning
	for doc := 1; ; doc++ {
		data, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return warns, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: read document %d: %w", name, doc, err)
		}
		if len(bytes.TrimSpace(stripComments(data))) == 0 {
			doc--
			continue
		}
		where := fmt.Sprintf("%s document %d", name, doc)
		srcs, w, err := decodeDocument(data, where, o)
		if err != nil {
			return nil, err
		}
		warns = append(warns, w...)
		for _, s := range srcs {
			warns = append(warns, Warning{Field: where, Message: s.Origin + " is not a ConfigMap or Secret; skipped (pods run from -f)"})
		}
	}
}
