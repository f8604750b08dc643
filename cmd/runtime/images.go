package main

// `husk images` and `husk rmi`: the image store through the CRI, as
// crictl images and crictl rmi show and change it.

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/distribution/reference"
	"github.com/husk-runtime/husk/criclient"
	"github.com/husk-runtime/husk/pullprogress"
	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func imagesCmd() *cobra.Command {
	var output string
	var quiet, digests bool
	cmd := &cobra.Command{
		Use:   "images [IMAGE]",
		Short: "List images (like crictl images)",
		Long: `List the runtime's images: one row per tag (an untagged image shows
<none>), with the image id and its size as distributed. IMAGE limits the
list to the images that name matches.`,
		Example: `  husk images
  husk images busybox
  husk images -q
  husk images -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, outTable, outJSON, outYAML); err != nil {
				return err
			}
			c, ctx, done, err := dialCall(cmd.Context(), 10*time.Second)
			if err != nil {
				return err
			}
			defer done()
			req := &runtimeapi.ListImagesRequest{}
			if len(args) == 1 {
				req.Filter = &runtimeapi.ImageFilter{Image: &runtimeapi.ImageSpec{Image: args[0]}}
			}
			resp, err := c.Images.ListImages(ctx, req)
			if err != nil {
				return criclient.Wrap(err, "list images")
			}
			imgs := resp.GetImages()
			sort.SliceStable(imgs, func(i, j int) bool { return imageSortKey(imgs[i]) < imageSortKey(imgs[j]) })
			out := cmd.OutOrStdout()
			if quiet {
				for _, im := range imgs {
					fmt.Fprintln(out, im.GetId())
				}
				return nil
			}
			if output != outTable {
				return printProto(out, output, &runtimeapi.ListImagesResponse{Images: imgs})
			}
			w := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
			if digests {
				fmt.Fprintln(w, "IMAGE\tTAG\tDIGEST\tIMAGE ID\tSIZE\tPINNED")
			} else {
				fmt.Fprintln(w, "IMAGE\tTAG\tIMAGE ID\tSIZE\tPINNED")
			}
			for _, im := range imgs {
				for _, row := range imageRows(im) {
					pinned := ""
					if im.GetPinned() {
						pinned = "true"
					}
					if digests {
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", row.repo, row.tag, row.digest, shortImageID(im.GetId()), pullprogress.HumanSize(int64(im.GetSize())), pinned)
					} else {
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", row.repo, row.tag, shortImageID(im.GetId()), pullprogress.HumanSize(int64(im.GetSize())), pinned)
					}
				}
			}
			return w.Flush()
		},
	}
	addOutputFlag(cmd, &output, outTable, outTable, outJSON, outYAML)
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print image ids only")
	cmd.Flags().BoolVar(&digests, "digests", false, "show the repo digests")
	return cmd
}

type imageRow struct{ repo, tag, digest string }

// imageRows splits an image's names as crictl does: a row per tag, or one
// row per repo digest (tag <none>) for an untagged image.
func imageRows(im *runtimeapi.Image) []imageRow {
	digestOf := map[string]string{}
	for _, rd := range im.GetRepoDigests() {
		if name, d, ok := strings.Cut(rd, "@"); ok {
			digestOf[name] = pullprogress.ShortDigest(d)
		}
	}
	var rows []imageRow
	for _, t := range im.GetRepoTags() {
		repo, tag := t, "<none>"
		if n, err := reference.ParseNormalizedNamed(t); err == nil {
			repo = n.Name()
			if tg, ok := n.(reference.Tagged); ok {
				tag = tg.Tag()
			}
		}
		rows = append(rows, imageRow{repo: repo, tag: tag, digest: orNone(digestOf[repo])})
	}
	if len(rows) == 0 {
		for _, rd := range im.GetRepoDigests() {
			name, d, _ := strings.Cut(rd, "@")
			rows = append(rows, imageRow{repo: name, tag: "<none>", digest: pullprogress.ShortDigest(d)})
		}
	}
	if len(rows) == 0 {
		rows = append(rows, imageRow{repo: "<none>", tag: "<none>", digest: "<none>"})
	}
	return rows
}

func imageSortKey(im *runtimeapi.Image) string {
	if len(im.GetRepoTags()) > 0 {
		return im.GetRepoTags()[0]
	}
	if len(im.GetRepoDigests()) > 0 {
		return im.GetRepoDigests()[0]
	}
	return "~" + im.GetId() // unnamed images last
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// shortImageID is the 13 characters crictl shows of "sha256:<hex>" ids.
func shortImageID(id string) string {
	return criclient.ShortID(strings.TrimPrefix(id, "sha256:"))
}

func rmiCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rmi IMAGE...",
		Short: "Remove images (like crictl rmi)",
		Long: `Remove images from the runtime's store. IMAGE is a name, a repo digest, an
id or an id prefix, as CRI ImageStatus accepts. An image a container uses
cannot be removed. Every IMAGE is tried; the command fails if any failed.`,
		Example: `  husk rmi busybox
  husk rmi docker.io/library/alpine:3.20 sha256:4f2a1c
  husk rmi $(husk images -q)`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := dial(10 * time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			failed := 0
			for _, ref := range args {
				if err := removeImage(cmd, c, ref); err != nil {
					fmt.Fprintln(os.Stderr, "husk:", err)
					failed++
				}
			}
			if failed > 0 {
				return fmt.Errorf("rmi: %d of %d images not removed", failed, len(args))
			}
			return nil
		},
	}
	return cmd
}

// removeImage removes one image. RemoveImage succeeds for an image that is
// not there (kubelet relies on that), so ImageStatus says first whether
// there is anything to remove.
func removeImage(cmd *cobra.Command, c *criclient.Client, ref string) error {
	ctx, cancel := c.Ctx(cmd.Context())
	defer cancel()
	spec := &runtimeapi.ImageSpec{Image: ref}
	st, err := c.Images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: spec})
	if err != nil {
		return criclient.Wrap(err, "image status %s", ref)
	}
	if st.GetImage() == nil {
		return fmt.Errorf("remove image %s: %w", ref, criclient.ErrNotFound)
	}
	if _, err := c.Images.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: spec}); err != nil {
		return criclient.Wrap(err, "remove image %s", ref)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Deleted: %s\n", ref)
	return nil
}
