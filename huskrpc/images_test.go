package huskrpc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	huskapi "github.com/husk-runtime/husk/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// serve runs the service on an in-memory listener over a real store
// (serveStore, which also returns the store).
func serve(t *testing.T) huskapi.ImagesClient {
	t.Helper()
	c, _ := serveStore(t)
	return c
}

func importBytes(ctx context.Context, c huskapi.ImagesClient, data []byte) (*huskapi.ImportResponse, error) {
	stream, err := c.Import(ctx)
	if err != nil {
		return nil, err
	}
	for len(data) > 0 {
		n := min(len(data), 64<<10)
		if err := stream.Send(&huskapi.ImportRequest{Data: data[:n]}); err != nil {
			break // the status comes with CloseAndRecv
		}
		data = data[n:]
	}
	return stream.CloseAndRecv()
}

func exportBytes(ctx context.Context, c huskapi.ImagesClient, req *huskapi.ExportRequest) ([]byte, int, error) {
	stream, err := c.Export(ctx, req)
	if err != nil {
		return nil, 0, err
	}
	var buf bytes.Buffer
	chunks := 0
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return buf.Bytes(), chunks, nil
		}
		if err != nil {
			return buf.Bytes(), chunks, err
		}
		if len(m.Data) > chunkSize {
			return nil, 0, status.Errorf(codes.Internal, "chunk of %d bytes", len(m.Data))
		}
		chunks++
		buf.Write(m.Data)
	}
}

// An image bigger than one chunk goes out and back in through the API with
// its id, and the errors of the image package arrive with their codes.
func TestImagesImportExport(t *testing.T) {
	ctx := context.Background()
	c := serve(t)
	img, err := random.Image(3<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("example.com/api/test:1")
	var arch bytes.Buffer
	if err := tarball.Write(tag, img, &arch); err != nil {
		t.Fatal(err)
	}
	id, _ := img.ConfigName()

	resp, err := importBytes(ctx, c, arch.Bytes())
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if len(resp.Images) != 1 || resp.Images[0].Id != id.String() || resp.Images[0].RepoTags[0] != "example.com/api/test:1" {
		t.Fatalf("Import = %v, want %s", resp, id)
	}
	for _, f := range []huskapi.ArchiveFormat{huskapi.ArchiveFormat_ARCHIVE_FORMAT_UNSPECIFIED, huskapi.ArchiveFormat_ARCHIVE_FORMAT_DOCKER} {
		out, chunks, err := exportBytes(ctx, c, &huskapi.ExportRequest{Ref: "example.com/api/test:1", Format: f})
		if err != nil || chunks < 2 {
			t.Fatalf("Export %v: %v in %d chunks", f, err, chunks)
		}
		again, err := importBytes(ctx, serve(t), out)
		if err != nil || again.Images[0].Id != id.String() {
			t.Errorf("import of the %v export: %v, %v", f, again, err)
		}
	}

	for _, tc := range []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"import garbage", func() error { _, err := importBytes(ctx, c, []byte("not an archive at all")); return err }, codes.InvalidArgument},
		{"export missing", func() error {
			_, _, err := exportBytes(ctx, c, &huskapi.ExportRequest{Ref: "example.com/none:1"})
			return err
		}, codes.NotFound},
		{"export no ref", func() error { _, _, err := exportBytes(ctx, c, &huskapi.ExportRequest{}); return err }, codes.InvalidArgument},
		{"export bad ref", func() error {
			_, _, err := exportBytes(ctx, c, &huskapi.ExportRequest{Ref: "busybox@sha256:zz"})
			return err
		}, codes.InvalidArgument},
	} {
		if err := tc.call(); status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}
}
