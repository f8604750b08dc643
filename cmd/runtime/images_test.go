package main

import (
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const dgst = "sha256:9ad63333ebc97e32b987ae66aa3cff81300e4c2e6d2f2395cef8a3ae18b249fe"

func TestImageRows(t *testing.T) {
	im := &runtimeapi.Image{
		Id:          "sha256:" + strings.Repeat("f", 64),
		RepoTags:    []string{"docker.io/library/busybox:1.36", "127.0.0.1:5000/test/busybox:1"},
		RepoDigests: []string{"docker.io/library/busybox@" + dgst},
	}
	got := imageRows(im)
	want := []imageRow{{"docker.io/library/busybox", "1.36", "9ad63333ebc9"}, {"127.0.0.1:5000/test/busybox", "1", "<none>"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("imageRows = %v, want %v", got, want)
	}
	im.RepoTags = nil
	if got := imageRows(im); len(got) != 1 || got[0] != (imageRow{"docker.io/library/busybox", "<none>", "9ad63333ebc9"}) {
		t.Errorf("untagged imageRows = %v", got)
	}
}
