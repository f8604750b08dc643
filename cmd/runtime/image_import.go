package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	huskapi "github.com/husk-runtime/husk/api/v1"
	"github.com/husk-runtime/husk/criclient"
	"github.com/spf13/cobra"
)

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
