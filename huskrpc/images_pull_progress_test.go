package huskrpc

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	huskapi "github.com/husk-runtime/husk/api/v1"
	"github.com/husk-runtime/husk/image"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

// serveStore runs the service on an in-memory listener over a real store
// and returns a client of it and the store.
func serveStore(t *testing.T) (huskapi.ImagesClient, *image.Store) {
	t.Helper()
	store, err := image.Open(context.Background(), image.Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	l := bufconn.Listen(1 << 20)
	g := grpc.NewServer()
	(&Server{Images: store}).Register(g)
	go g.Serve(l)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return l.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return huskapi.NewImagesClient(conn), store
}

// A client subscribed before the pull gets NOT_STARTED at once, then the
// pull's events, ending with DONE, the image id and every layer done.
func TestPullProgressStream(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	ref := strings.TrimPrefix(srv.URL, "http://") + "/test/img:1"
	img, err := random.Image(64<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	client, store := serveStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	stream, err := client.PullProgress(ctx, &huskapi.PullProgressRequest{Ref: ref})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatalf("first event: %v", err)
	}
	if first.GetState() != huskapi.PullState_PULL_STATE_NOT_STARTED || first.GetRef() != ref {
		t.Fatalf("first event = %v, want NOT_STARTED for %s", first, ref)
	}
	pulled, err := store.Pull(ctx, ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	var last *huskapi.PullProgressEvent
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		last = ev
	}
	if last.GetState() != huskapi.PullState_PULL_STATE_DONE || last.GetImageId() != pulled.ID || len(last.GetLayers()) != 2 {
		t.Fatalf("last event = %v, want DONE, image %s, 2 layers", last, pulled.ID)
	}
	for i, l := range last.GetLayers() {
		if l.GetState() != huskapi.LayerState_LAYER_STATE_DONE || l.GetDownloadedBytes() != l.GetTotalBytes() || l.GetTotalBytes() == 0 || !strings.HasPrefix(l.GetDigest(), "sha256:") {
			t.Errorf("layer %d at the end = %v, want done with all its bytes", i, l)
		}
	}
}

func TestPullProgressInvalid(t *testing.T) {
	client, _ := serveStore(t)
	for _, ref := range []string{"", "bad ref"} {
		stream, err := client.PullProgress(context.Background(), &huskapi.PullProgressRequest{Ref: ref})
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("PullProgress(%q): %v, want InvalidArgument", ref, err)
		}
	}
}
