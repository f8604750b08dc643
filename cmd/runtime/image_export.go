package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	huskapi "github.com/husk-runtime/husk/api/v1"
	"github.com/husk-runtime/husk/criclient"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
)

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
