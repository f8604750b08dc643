package main

// `husk image import` and `husk image export`: image archives for nodes
// that reach no registry. The daemon owns the image store, so both talk to
// it over husk's own API (api/v1) on the CRI socket; the archive's bytes go
// over the socket too, so the CLI may run in another mount namespace.

import (
	"time"

	"github.com/spf13/cobra"
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
