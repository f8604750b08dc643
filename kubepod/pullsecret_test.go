package kubepod

import (
	"strings"
	"testing"
)

// imagePullSecrets of the manifest: the most specific key that matches
// the image's registry and repository gives its credentials; Docker Hub's
// old keys match docker.io images; an absent Secret is a warning.
func TestPullSecrets(t *testing.T) {
	srcs, _, err := Decode(strings.NewReader(`
kind: Secret
metadata: {name: regcred}
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{"auths": {"https://index.docker.io/v1/": {"auth": "aHViOmh1Yi1wYXNz"}, "reg.example:5000": {"username": "u", "password": "p"}, "reg.example:5000/team/private": {"username": "team", "password": "tp"}}}'
---
kind: Pod
metadata: {name: p}
spec:
  imagePullSecrets: [{name: regcred}, {name: absent}]
  containers:
  - {name: hub, image: busybox:1}
  - {name: reg, image: reg.example:5000/other/app:2}
  - {name: team, image: "reg.example:5000/team/private/app@sha256:abc"}
  - {name: none, image: elsewhere.example/app:1}
`))
	if err != nil {
		t.Fatal(err)
	}
	opts := opts()
	opts.Objects = srcs[0].Objects
	p, err := Translate(srcs[0].Pod, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"hub": "hub:hub-pass", "reg": "u:p", "team": "team:tp", "none": ""}
	for _, c := range p.Containers {
		got := ""
		if c.PullAuth != nil {
			got = c.PullAuth.Username + ":" + c.PullAuth.Password
		}
		if got != want[c.Name] {
			t.Errorf("%s (%s): credentials %q, want %q", c.Name, c.Image, got, want[c.Name])
		}
	}
	if !hasWarning(p, "spec.imagePullSecrets[1]") || hasWarning(p, "spec.imagePullSecrets[0]") {
		t.Errorf("warnings %v: want the absent secret's only", p.Warnings)
	}
}
