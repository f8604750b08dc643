package cri

import (
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Every item goes out once, in lists of at least one, each list under the
// bound unless one item alone is bigger; no items, no message.
func TestSendChunks(t *testing.T) {
	big := strings.Repeat("x", streamChunkBytes/3)
	var items []*runtimeapi.Image
	for i := range 10 {
		items = append(items, &runtimeapi.Image{Id: string(rune('a' + i)), RepoTags: []string{big}})
	}
	items = append(items, &runtimeapi.Image{Id: "huge", RepoTags: []string{big + big + big + big}})
	items = append(items, &runtimeapi.Image{Id: "small", RepoTags: []string{""}})
	var got []string
	msgs := 0
	err := sendChunks(items, func(chunk []*runtimeapi.Image) error {
		msgs++
		if len(chunk) == 0 {
			t.Fatal("empty list sent")
		}
		size := 0
		for _, it := range chunk {
			got = append(got, it.Id)
			size += len(it.RepoTags[0])
		}
		if len(chunk) > 1 && size > streamChunkBytes {
			t.Errorf("list of %d items, %d bytes", len(chunk), size)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "a,b,c,d,e,f,g,h,i,j,huge,small" || msgs < 5 {
		t.Fatalf("sent %v in %d messages", got, msgs)
	}
	if err := sendChunks([]*runtimeapi.Image{}, func([]*runtimeapi.Image) error { t.Fatal("sent"); return nil }); err != nil {
		t.Fatal(err)
	}
}
