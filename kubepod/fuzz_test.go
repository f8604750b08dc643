package kubepod

import (
	"bytes"
	"testing"
)

// FuzzDecodeTranslate feeds arbitrary manifests to `husk pod run`'s
// reader and translation: errors and warnings, never a panic, and every
// plan it makes names its pod and has a sandbox config.
func FuzzDecodeTranslate(f *testing.F) {
	f.Add([]byte(`apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default, labels: {app: web}}
spec:
  containers:
  - name: nginx
    image: nginx:1.27
    ports: [{containerPort: 80, hostPort: 8080}]
    env: [{name: A, value: b}, {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
    resources: {limits: {cpu: 500m, memory: 128Mi}}
    securityContext: {runAsUser: 1000, readOnlyRootFilesystem: true}
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, emptyDir: {}}]
`))
	f.Add([]byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox","command":["sleep","1"]}]}}}}`))
	f.Add([]byte("---\nkind: Service\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {hostNetwork: true, containers: [{name: c, image: i}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		srcs, _, err := Decode(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, s := range srcs {
			p, err := Translate(s.Pod, opts())
			if err != nil {
				continue
			}
			if p.Name == "" || p.Sandbox == nil || p.Sandbox.GetMetadata().GetName() != p.Name {
				t.Fatalf("plan without a name or sandbox config from %q: %+v", data, p)
			}
		}
	})
}
