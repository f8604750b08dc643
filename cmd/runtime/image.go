package main

// `husk image import` and `husk image export`: image archives for nodes
// that reach no registry. The daemon owns the image store, so both talk to
// it over husk's own API (api/v1) on the CRI socket; the archive's bytes go
// over the socket too, so the CLI may run in another mount namespace.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	huskapi "github.com/husk-runtime/husk/api/v1"
	"github.com/husk-runtime/husk/criclient"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
)

// archiveTimeout bounds import and export when --timeout is 0: archives
// of big images take a while to move, but a daemon that hangs must still
// end the call.
const archiveTimeout = 30 * time.Minute

// archiveChunk is the size of one message of archive bytes: well under
// gRPC's default 4 MiB message limit.
const archiveChunk = 1 << 20

func imageCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Import and export image archives through the daemon",
		Long: `Import and export image archives, so that a node with no registry gets its
images from a file. Both formats are read and written: an OCI image layout
in a tar (the default) and a "docker save" tarball.`,
		Example: `  husk image export busybox busybox.oci.tar
  husk image import busybox.oci.tar`,
	}
	// --endpoint and --timeout are the root's persistent flags
	// (client.go); --timeout 0 means archiveTimeout here.
	cmd.AddCommand(imageImportCmd(), imageExportCmd())
	return cmd
}

func imageImportCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE",
		Short: "Import every image of an archive into the daemon's store",
		Long: `Import every image of an archive into the daemon's store: an OCI image
layout in a tar (husk image export, docker save since Docker 25, ctr export,
skopeo copy oci-archive:) or a "docker save" tarball, plain or compressed
with gzip or zstd. FILE "-" reads standard input. Each layer is verified
against its digest and unpacked as a pull would; either every image of the
archive is imported or none is.`,
		Example: `  husk image import busybox.tar
  docker save busybox:latest | husk image import -
  husk image import --endpoint unix:///tmp/h/husk.sock images.tar.gz`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			var in io.Reader = os.Stdin
			if file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				defer f.Close()
				in = f
			}
			c, ctx, done, err := dialCall(cmd.Context(), archiveTimeout)
			if err != nil {
				return err
			}
			defer done()
			client := huskapi.NewImagesClient(c.Conn)
			resp, err := sendArchive(ctx, client, in)
			if err != nil {
				return criclient.Wrap(err, "import %s", file)
			}
			out := cmd.OutOrStdout()
			for _, img := range resp.GetImages() {
				names := strings.Join(img.GetRepoTags(), " ")
				if names == "" {
					names = "(no name)"
				}
				fmt.Fprintf(out, "imported %s %s\n", img.GetId(), names)
			}
			return nil
		},
	}
}

// sendArchive streams in to the daemon's Import.
func sendArchive(ctx context.Context, client huskapi.ImagesClient, in io.Reader) (*huskapi.ImportResponse, error) {
	stream, err := client.Import(ctx)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, archiveChunk)
	for {
		n, rerr := io.ReadFull(in, buf)
		if n > 0 {
			if err := stream.Send(&huskapi.ImportRequest{Data: buf[:n]}); err != nil {
				// io.EOF: the daemon ended the call; its status says why.
				if errors.Is(err, io.EOF) {
					_, err = stream.CloseAndRecv()
				}
				return nil, err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			// Cancel the call, so the daemon keeps nothing of a partial
			// archive.
			return nil, fmt.Errorf("read archive: %w", rerr)
		}
	}
	return stream.CloseAndRecv()
}

func imageExportCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "export REF FILE",
		Short: "Write an image of the daemon's store to an archive",
		Long: `Write an image of the daemon's store to an archive, with the blobs it was
pulled or imported with, so its id and digests stay the same. REF is a name,
a repo digest, an id or an id prefix; named by a tag, the archive names the
image by that tag, otherwise by all its tags. FILE "-" writes standard
output. Images that husk has no layer blobs of (the built-in pause, images
pulled before husk kept them) cannot be exported: FailedPrecondition.`,
		Example: `  husk image export busybox busybox.tar
  husk image export --format docker docker.io/library/busybox:latest busybox-docker.tar
  husk image export busybox - | ssh node2 husk image import -`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, file := args[0], args[1]
			var f huskapi.ArchiveFormat
			switch format {
			case "oci":
				f = huskapi.ArchiveFormat_ARCHIVE_FORMAT_OCI
			case "docker":
				f = huskapi.ArchiveFormat_ARCHIVE_FORMAT_DOCKER
			default:
				return fmt.Errorf("--format %q: want oci or docker", format)
			}
			c, ctx, done, err := dialCall(cmd.Context(), archiveTimeout)
			if err != nil {
				return err
			}
			defer done()
			client := huskapi.NewImagesClient(c.Conn)
			stream, err := client.Export(ctx, &huskapi.ExportRequest{Ref: ref, Format: f})
			if err != nil {
				return criclient.Wrap(err, "export %s", ref)
			}
			if file == "-" {
				_, err := receiveArchive(stream, cmd.OutOrStdout())
				return criclient.Wrap(err, "export %s", ref)
			}
			n, err := receiveToFile(stream, file)
			if err != nil {
				return criclient.Wrap(err, "export %s", ref)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "exported %s to %s (%s, %d bytes)\n", ref, file, format, n)
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "oci", "archive format: oci or docker")
	return cmd
}

// receiveToFile writes the archive to a temp file beside file and renames
// it into place once whole, so a failed export leaves no partial archive
// and no file at all when the daemon refuses before sending anything.
func receiveToFile(stream grpc.ServerStreamingClient[huskapi.ExportChunk], file string) (int64, error) {
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return 0, errors.New("the daemon sent no data")
	}
	if err != nil {
		return 0, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".tmp-*")
	if err != nil {
		return 0, err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(first.GetData()); err != nil {
		return 0, err
	}
	n, err := receiveArchive(stream, tmp)
	if err != nil {
		return 0, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return 0, err
	}
	if err := tmp.Sync(); err != nil {
		return 0, err
	}
	if err := tmp.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return 0, err
	}
	ok = true
	return n + int64(len(first.GetData())), nil
}

func receiveArchive(stream grpc.ServerStreamingClient[huskapi.ExportChunk], w io.Writer) (int64, error) {
	var n int64
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		m, err := w.Write(chunk.GetData())
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
}
