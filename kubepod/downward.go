package kubepod

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// envFrom resolves an env var's valueFrom where no cluster is needed: the
// downward API's pod fields (fieldRef) and the container's own resources
// (resourceFieldRef), as kubelet does (ConfigMap and Secret keys are
// keyRef's). The fields known only once the pod runs (status.podIP,
// status.hostIP) need a running sandbox; ok is false with the reason.
func (t *translator) envFrom(c *corev1.Container, src *corev1.EnvVarSource) (value string, ok bool, why string) {
	switch {
	case src.FieldRef != nil:
		return t.fieldRef(src.FieldRef.FieldPath)
	case src.ResourceFieldRef != nil:
		v, err := resourceFieldRef(c, src.ResourceFieldRef)
		if err != nil {
			return "", false, err.Error()
		}
		return v, true, ""
	}
	return "", false, "needs a cluster"
}

// fieldRef is the downward API's value of path for pod.
func (t *translator) fieldRef(path string) (string, bool, string) {
	pod, opts := t.pod, t.opts
	switch path {
	case "metadata.name":
		return pod.Name, true, ""
	case "metadata.namespace":
		return pod.Namespace, true, "" // "default" when unset (Translate)
	case "metadata.uid":
		return opts.UID, true, ""
	case "spec.nodeName":
		// The pod runs on this node; kubelet reports its hostname.
		h, err := os.Hostname()
		if err != nil {
			return "", false, fmt.Sprintf("node name: %v", err)
		}
		return h, true, ""
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, true, ""
	case "status.podIP", "status.podIPs", "status.hostIP", "status.hostIPs":
		return "", false, path + " is known only once the pod runs; not supported by husk pod run"
	}
	for _, m := range []struct {
		prefix string
		values map[string]string
	}{{"metadata.labels", pod.Labels}, {"metadata.annotations", pod.Annotations}} {
		if key, ok := strings.CutPrefix(path, m.prefix+"['"); ok && strings.HasSuffix(key, "']") {
			return m.values[strings.TrimSuffix(key, "']")], true, ""
		}
	}
	return "", false, fmt.Sprintf("field %q is not supported", path)
}

// resourceFieldRef is kubelet's value of a container resource: the
// quantity divided by the divisor, rounded up. An unset limit reads as
// the node's allocatable, which without a node object is unknown here.
func resourceFieldRef(c *corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	if ref.ContainerName != "" && ref.ContainerName != c.Name {
		return "", fmt.Errorf("resources of another container (%s) are not supported", ref.ContainerName)
	}
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok {
		return "", fmt.Errorf("resource %q is not supported", ref.Resource)
	}
	var list corev1.ResourceList
	switch kind {
	case "limits":
		list = c.Resources.Limits
	case "requests":
		list = c.Resources.Requests
	default:
		return "", fmt.Errorf("resource %q is not supported", ref.Resource)
	}
	q, set := list[corev1.ResourceName(name)]
	if !set {
		if kind == "limits" {
			return "", fmt.Errorf("%s is not set: its default is the node's allocatable, unknown without a cluster", ref.Resource)
		}
		q = resource.Quantity{}
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if name == "cpu" {
		// In millicores, as kubelet's ExtractContainerResourceValue.
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
}
