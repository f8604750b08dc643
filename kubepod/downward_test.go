package kubepod

import (
	"slices"
	"testing"
)

// TestDownwardEnv checks the env values resolved without a cluster (pod
// metadata, the container's own resources, kubelet's rounding) and that
// the others are warnings naming the field.
func TestDownwardEnv(t *testing.T) {
	p := translate(t, `
kind: Pod
metadata: {name: web, labels: {app: shop}, annotations: {team: infra}}
spec:
  serviceAccountName: runner
  containers:
  - name: c
    image: i:1
    resources: {requests: {cpu: 250m, memory: 64Mi}, limits: {cpu: 1500m, memory: 100Mi}}
    env:
    - {name: NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
    - {name: APP, valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}}
    - {name: TEAM, valueFrom: {fieldRef: {fieldPath: "metadata.annotations['team']"}}}
    - {name: SA, valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}}
    - {name: CPU, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}
    - {name: CPU_M, valueFrom: {resourceFieldRef: {resource: requests.cpu, divisor: 1m}}}
    - {name: MEM_MI, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: PW, valueFrom: {secretKeyRef: {name: s, key: k, optional: true}}}
    - {name: AFTER, value: "$(NAME)-$(CPU)"}
`)
	var env []string
	for _, kv := range p.Containers[0].Config(0, "").Envs {
		env = append(env, kv.Key+"="+string(kv.Value))
	}
	want := []string{"NAME=web", "NS=default", "UID=uid-1", "APP=shop", "TEAM=infra", "SA=runner",
		"CPU=2", "CPU_M=250", "MEM_MI=100", "AFTER=web-2"}
	if !slices.Equal(env, want) {
		t.Errorf("env\n got %q\nwant %q", env, want)
	}
	// An optional Secret that is absent leaves PW out, without a warning
	// (kubelet's way, TestConfigMapsAndSecrets).
	for _, f := range []string{"spec.containers[0].env[9].valueFrom"} {
		if !hasWarning(p, f) {
			t.Errorf("no warning for %s: %v", f, p.Warnings)
		}
	}
	if hasWarning(p, "spec.containers[0].env[0].valueFrom") {
		t.Error("a resolved valueFrom warned")
	}
}
