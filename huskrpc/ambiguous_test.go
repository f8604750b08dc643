package huskrpc

import (
	"context"
	"fmt"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	huskapi "github.com/husk-runtime/husk/api/v1"
	"github.com/husk-runtime/husk/cri"
	"github.com/husk-runtime/husk/image"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// An id prefix two images share was InvalidArgument through husk's API
// and Unknown through the CRI, when each had its own table of codes. Both
// now map through errdefs: asked through both, it is InvalidArgument.
func TestAmbiguousPrefixThroughBothAPIs(t *testing.T) {
	ctx := context.Background()
	c, store := serveStore(t)
	prefix := sharedPrefix(ctx, t, store)
	crisrv := &cri.Server{Images: store}

	_, _, err := exportBytes(ctx, c, &huskapi.ExportRequest{Ref: prefix})
	assertInvalid(t, "husk Export", err)
	_, err = crisrv.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: prefix}})
	assertInvalid(t, "CRI ImageStatus", err)
	_, err = crisrv.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: prefix}})
	assertInvalid(t, "CRI RemoveImage", err)
	if n := len(store.List()); n < 2 {
		t.Errorf("%d images left, want both: an ambiguous remove removes nothing", n)
	}
}

func assertInvalid(t *testing.T, call string, err error) {
	t.Helper()
	if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "ambiguous") {
		t.Errorf("%s of an ambiguous prefix: %v, want InvalidArgument saying ambiguous", call, err)
	}
}

// sharedPrefix imports small images until two ids share their first four
// hex digits (the shortest prefix the store takes), and returns those
// digits: by the birthday bound about 300 imports, all of one layer.
func sharedPrefix(ctx context.Context, t *testing.T, store *image.Store) string {
	t.Helper()
	seen := map[string]string{}
	for i := range 20000 {
		img, err := store.ImportBuiltin(ctx, fmt.Sprintf("localhost/ambiguous/img:%d", i), emptyTar, v1.Config{Env: []string{fmt.Sprintf("N=%d", i)}})
		if err != nil {
			t.Fatal(err)
		}
		p := strings.TrimPrefix(img.ID, "sha256:")[:4]
		if other, ok := seen[p]; ok {
			t.Logf("%s and %s share %s after %d imports", other, img.ID, p, i+1)
			return p
		}
		seen[p] = img.ID
	}
	t.Fatal("no two ids share a prefix")
	return ""
}

// emptyTar is a tar archive with no entries: two zero blocks.
var emptyTar = make([]byte, 1024)
