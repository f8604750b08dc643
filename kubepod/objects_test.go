package kubepod

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

const objectsManifest = `apiVersion: v1
kind: Pod
metadata:
  name: app
spec:
  containers:
  - name: app
    image: busybox
    envFrom:
    - configMapRef: {name: settings}
    - prefix: DB_
      secretRef: {name: creds}
    - configMapRef: {name: absent, optional: true}
    env:
    - name: MODE
      value: from-env
    - name: COLOR
      valueFrom:
        configMapKeyRef: {name: settings, key: color}
    - name: TOKEN
      valueFrom:
        secretKeyRef: {name: creds, key: token}
    - name: NOT_SET
      valueFrom:
        secretKeyRef: {name: creds, key: nothing, optional: true}
    - name: GREETING
      value: "$(COLOR) $(DB_user)"
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  MODE: from-configmap
  color: blue
  "bad=key": x
binaryData:
  blob: AAEC
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
type: Opaque
data:
  user: YWRtaW4=
  token: b2xk
stringData:
  token: s3cret
`

// TestConfigMapsAndSecrets: a Pod's env and envFrom take ConfigMaps and
// Secrets from the same manifest (after the Pod, too), as kubelet reads
// them: envFrom first in key order with its prefix, env over it,
// stringData over data, binaryData as bytes, optional absences leave the
// variable out, and keys that cannot be names are skipped with a warning.
func TestConfigMapsAndSecrets(t *testing.T) {
	srcs, _, err := Decode(strings.NewReader(objectsManifest))
	if err != nil || len(srcs) != 1 {
		t.Fatalf("Decode: %v (%d pods)", err, len(srcs))
	}
	o := opts()
	o.Objects = srcs[0].Objects
	plan, err := Translate(srcs[0].Pod, o)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kv := range plan.Containers[0].config.Envs {
		got = append(got, kv.Key+"="+string(kv.Value))
	}
	want := []string{"MODE=from-env", "blob=\x00\x01\x02", "color=blue", "DB_token=s3cret", "DB_user=admin",
		"COLOR=blue", "TOKEN=s3cret", "GREETING=blue admin"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("env:\n got %q\nwant %q", got, want)
	}
	found := false
	for _, w := range plan.Warnings {
		if strings.Contains(w.String(), "envFrom[0]") && strings.Contains(w.Message, "bad=key") {
			found = true
		}
	}
	if !found {
		t.Errorf("no warning names the key that cannot be a variable: %v", plan.Warnings)
	}
}

// TestMissingObjects: what is neither in the manifest nor optional fails
// the pod with kubelet's words, before anything runs.
func TestMissingObjects(t *testing.T) {
	base := `apiVersion: v1
kind: Pod
metadata: {name: app}
spec:
  containers:
  - name: app
    image: busybox
`
	for _, c := range []struct{ extra, want string }{
		{"    envFrom:\n    - configMapRef: {name: nope}\n", `spec.containers[0].envFrom[0]: configmap "nope" not found`},
		{"    env:\n    - name: X\n      valueFrom:\n        secretKeyRef: {name: nope, key: k}\n", `spec.containers[0].env[0].valueFrom: secret "nope" not found`},
		{"    env:\n    - name: X\n      valueFrom:\n        configMapKeyRef: {name: cm, key: k}\n---\nkind: ConfigMap\napiVersion: v1\nmetadata: {name: cm}\ndata: {other: v}\n",
			"couldn't find key k in ConfigMap default/cm"},
	} {
		srcs, _, err := Decode(strings.NewReader(base + c.extra))
		if err != nil {
			t.Fatal(err)
		}
		o := opts()
		o.Objects = srcs[0].Objects
		if _, err := Translate(srcs[0].Pod, o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.extra, err, c.want)
		}
	}
	if _, _, err := Decode(strings.NewReader(base + "---\nkind: Secret\napiVersion: v1\nmetadata: {name: s}\n---\nkind: Secret\napiVersion: v1\nmetadata: {name: s}\n")); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a Secret twice: %v", err)
	}
}

// TestObjectVolumes: configMap, secret and projected volumes become the
// files kubelet writes (every key, or the items with their paths and
// modes), read-only, the Secret's on a tmpfs; what escapes the volume or
// is written twice is refused.
func TestObjectVolumes(t *testing.T) {
	pod := objectsManifest[:strings.Index(objectsManifest, "---")] + `    volumeMounts:
    - {name: all, mountPath: /all}
    - {name: sec, mountPath: /sec}
    - {name: proj, mountPath: /proj}
  volumes:
  - name: all
    configMap: {name: settings}
  - name: sec
    secret:
      secretName: creds
      defaultMode: 0400
      items: [{key: token, path: t/token}]
  - name: proj
    projected:
      sources:
      - configMap: {name: settings, items: [{key: color, path: c, mode: 0600}]}
      - secret: {name: creds, items: [{key: user, path: u}]}
      - configMap: {name: absent, optional: true}
`
	srcs, _, err := Decode(strings.NewReader(pod + objectsManifest[strings.Index(objectsManifest, "---"):]))
	if err != nil {
		t.Fatal(err)
	}
	o := opts()
	o.Objects = srcs[0].Objects
	plan, err := Translate(srcs[0].Pod, o)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, hp := range plan.HostPaths {
		var fs []string
		for _, f := range hp.Files {
			fs = append(fs, fmt.Sprintf("%s=%q:%#o", f.Path, f.Data, f.Mode))
		}
		got[filepath.Base(hp.Path)] = fmt.Sprintf("memory=%v %s", hp.Memory, strings.Join(fs, " "))
	}
	want := map[string]string{
		"all":  `memory=false MODE="from-configmap":0644 bad=key="x":0644 blob="\x00\x01\x02":0644 color="blue":0644`,
		"sec":  `memory=true t/token="s3cret":0400`,
		"proj": `memory=true c="blue":0600 u="admin":0644`,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("volume %s:\n got %s\nwant %s", k, got[k], w)
		}
	}
	for _, m := range plan.Containers[0].config.Mounts {
		if !m.Readonly && m.HostPath != plan.Containers[0].TerminationLog {
			t.Errorf("mount %s is writable", m.ContainerPath)
		}
	}
	for _, bad := range []string{"../escape", "/abs"} {
		m := strings.Replace(pod, "path: t/token", "path: "+bad, 1) + objectsManifest[strings.Index(objectsManifest, "---"):]
		srcs, _, err := Decode(strings.NewReader(m))
		if err != nil {
			t.Fatal(err)
		}
		o.Objects = srcs[0].Objects
		if _, err := Translate(srcs[0].Pod, o); err == nil || !strings.Contains(err.Error(), "items[0].path") {
			t.Errorf("item path %q: %v", bad, err)
		}
	}
}
