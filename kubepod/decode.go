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
	"hash/fnv"
	"io"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/rand"
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
	// fields that need a cluster), already prefixed.
	Warnings []Warning
	// Replica numbers the pods of one workload from 0: only the first
	// one's translation warnings are printed, the rest are the same.
	Replica int
	// Job is set for a Job's (or CronJob's) template: its pods are made
	// by the Job's own loop (podrun), not once each.
	Job *JobSpec
}

// JobSpec is what a Job asks of its pods, as the Job controller runs them:
// Completions of them must succeed, at most Parallelism at once, and the
// Job fails after more than BackoffLimit failures (failed pods, or
// container restarts under restartPolicy OnFailure), or when it has run
// longer than ActiveDeadline (0: no deadline).
type JobSpec struct {
	Name           string // the Job's
	Completions    int32
	Parallelism    int32
	BackoffLimit   int32
	ActiveDeadline time.Duration
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
		Template *corev1.PodTemplateSpec `json:"template"`
		Replicas *int32                  `json:"replicas"`
		jobFields
		JobTemplate *struct {
			Spec struct {
				Template *corev1.PodTemplateSpec `json:"template"`
				jobFields
			} `json:"spec"`
		} `json:"jobTemplate"`
	} `json:"spec"`
}

type jobFields struct {
	Completions           *int32 `json:"completions"`
	Parallelism           *int32 `json:"parallelism"`
	BackoffLimit          *int32 `json:"backoffLimit"`
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds"`
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
	if pod.Namespace == "" {
		pod.Namespace = wl.Metadata.Namespace
	}
	origin := tm.Kind + "/" + wl.Metadata.Name
	src := Source{Pod: pod, Origin: origin, FieldPrefix: prefix}
	return workloadSources(src, tm.Kind, &wl, w)
}

// workloadSources makes the pods a workload's controller would: names as
// kubelet would see them (the controllers' generateName patterns), the
// labels the controllers add, one Source per replica. What needs a
// cluster (selectors, rollouts, schedules) is a warning.
func workloadSources(src Source, kind string, wl *workload, w []Warning) ([]Source, []Warning, error) {
	name, pod := wl.Metadata.Name, src.Pod
	field := strings.TrimSuffix(src.FieldPrefix, ".")
	if name == "" {
		return nil, nil, fmt.Errorf("%s: metadata.name: required", src.Origin)
	}
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Name, pod.GenerateName = "", name+"-"
	replicas := int32(1)
	switch kind {
	case "Deployment", "ReplicaSet", "ReplicationController", "StatefulSet":
		if wl.Spec.Replicas != nil {
			replicas = *wl.Spec.Replicas
		}
		if replicas < 0 {
			return nil, nil, fmt.Errorf("%s: spec.replicas: %d is negative", src.Origin, replicas)
		}
		w = append(w, Warning{Field: "spec.selector", Message: fmt.Sprintf("%s: %d pods are run once each; selectors, rollouts and scaling need a cluster", src.Origin, replicas)})
	case "DaemonSet":
		w = append(w, Warning{Field: field, Message: src.Origin + ": one pod, for this node"})
	case "Job", "CronJob":
		jf := wl.Spec.jobFields
		if kind == "CronJob" {
			jf = wl.Spec.JobTemplate.Spec.jobFields
			w = append(w, Warning{Field: "spec.schedule", Message: src.Origin + ": its Job is run once, now; schedules need a cluster"})
		}
		job, err := jobSpec(name, jf, pod)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", src.Origin, err)
		}
		pod.Labels["job-name"], pod.Labels["batch.kubernetes.io/job-name"] = name, name
		src.Job, src.Warnings = job, w
		return []Source{src}, nil, nil
	case "PodTemplate":
		pod.Name, pod.GenerateName = name, ""
	}
	if kind == "Deployment" {
		// The ReplicaSet's name carries the template's hash, and so do
		// the pods: <deployment>-<hash>-<random>.
		hash := templateHash(pod)
		pod.Labels["pod-template-hash"] = hash
		pod.GenerateName = name + "-" + hash + "-"
	}
	var out []Source
	for i := range int(replicas) {
		s := src
		s.Pod, s.Replica = pod.DeepCopy(), i
		if kind == "StatefulSet" {
			// StatefulSet pods are named by ordinal, not at random.
			s.Pod.Name, s.Pod.GenerateName = fmt.Sprintf("%s-%d", name, i), ""
			s.Pod.Labels["statefulset.kubernetes.io/pod-name"] = s.Pod.Name
			s.Pod.Labels["apps.kubernetes.io/pod-index"] = strconv.Itoa(i)
			if s.Pod.Spec.Hostname == "" {
				s.Pod.Spec.Hostname = s.Pod.Name
			}
		}
		if i == 0 {
			s.Warnings = w
		}
		out = append(out, s)
	}
	if replicas == 0 {
		return nil, []Warning{{Field: "spec.replicas", Message: src.Origin + ": 0 replicas; nothing to run"}}, nil
	}
	return out, nil, nil
}

// jobSpec applies the Job API's defaults: completions and parallelism 1,
// backoffLimit 6. A Job's pods may not restart Always.
func jobSpec(name string, jf jobFields, pod *corev1.Pod) (*JobSpec, error) {
	j := &JobSpec{Name: name, Completions: 1, Parallelism: 1, BackoffLimit: 6}
	if jf.Completions != nil {
		j.Completions = *jf.Completions
	}
	if jf.Parallelism != nil {
		j.Parallelism = *jf.Parallelism
	}
	if jf.BackoffLimit != nil {
		j.BackoffLimit = *jf.BackoffLimit
	}
	if d := jf.ActiveDeadlineSeconds; d != nil {
		if *d <= 0 {
			return nil, fmt.Errorf("spec.activeDeadlineSeconds: %d; it must be positive", *d)
		}
		j.ActiveDeadline = time.Duration(*d) * time.Second
	}
	switch {
	case j.Completions < 1:
		return nil, fmt.Errorf("spec.completions: %d; husk pod run needs at least 1 (work-queue Jobs need a cluster)", j.Completions)
	case j.Parallelism < 1:
		return nil, fmt.Errorf("spec.parallelism: %d; at least 1 pod must run", j.Parallelism)
	case j.BackoffLimit < 0:
		return nil, fmt.Errorf("spec.backoffLimit: %d is negative", j.BackoffLimit)
	}
	switch pod.Spec.RestartPolicy {
	case corev1.RestartPolicyNever, corev1.RestartPolicyOnFailure:
	default:
		return nil, fmt.Errorf("spec.template.spec.restartPolicy: %q; a Job's pods restart Never or OnFailure", pod.Spec.RestartPolicy)
	}
	return j, nil
}

// templateHash is the Deployment controller's pod-template-hash: FNV-32a
// of the template, encoded in the API's safe alphabet. (The controller
// hashes its Go object dump; the value differs, the shape does not.)
func templateHash(pod *corev1.Pod) string {
	b, _ := json.Marshal(pod.Spec)
	h := fnv.New32a()
	h.Write(b)
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
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
