package main

// `husk pull`: CRI PullImage with progress. PullImage is unary, so the
// progress comes from husk's own API (api/v1 Images.PullProgress) on the
// same socket: the CLI subscribes first, then pulls, and draws one line per
// layer as docker pull does. A runtime without husk's API (containerd,
// CRI-O) gets a spinner instead.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/husk-runtime/husk/criclient"
	"github.com/husk-runtime/husk/pullprogress"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func pullCmd() *cobra.Command {
	var creds string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "pull IMAGE",
		Short: "Pull an image, showing its progress (like docker pull)",
		Long: `Pull an image through the runtime's CRI PullImage, as kubelet and crictl do,
and show its progress: one line per layer with a bar while it downloads, as
docker pull does, redrawn in place on a terminal and as plain lines
otherwise. The progress of a pull already started by kubelet or crictl is
followed too. A runtime that does not serve husk's API (containerd, CRI-O)
reports no progress: a spinner shows the time elapsed instead.

The pull has no time limit unless --timeout sets one: the daemon gives up a
pull whose registry stops sending.`,
		Example: `  husk pull busybox
  husk pull --creds user:secret registry.example.com/team/app:1.2
  husk pull -q docker.io/library/alpine:3.20
  husk pull --endpoint unix:///run/containerd/containerd.sock busybox`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: args[0]}}
			if creds != "" {
				user, pass, ok := strings.Cut(creds, ":")
				if !ok || user == "" {
					return errors.New("--creds: want USERNAME:PASSWORD")
				}
				req.Auth = &runtimeapi.AuthConfig{Username: user, Password: pass}
			}
			c, err := dial(0) // unbounded by default: see Long
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := c.Ctx(cmd.Context())
			defer cancel()
			out := cmd.OutOrStdout()
			if quiet {
				resp, err := c.Images.PullImage(ctx, req)
				if err != nil {
					return criclient.Wrap(err, "pull %s", args[0])
				}
				fmt.Fprintln(out, resp.GetImageRef())
				return nil
			}
			tty, width := terminal(out)
			return pullprogress.Pull(ctx, c, req, out, tty, width)
		},
	}
	f := cmd.Flags()
	f.StringVar(&creds, "creds", "", "registry credentials, USERNAME:PASSWORD")
	f.BoolVarP(&quiet, "quiet", "q", false, "print the image id only, no progress")
	return cmd
}

// terminal reports whether w is a terminal, and its width.
func terminal(w io.Writer) (bool, int) {
	f, ok := w.(*os.File)
	if !ok {
		return false, 0
	}
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
		return false, 0
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return true, 80
	}
	return true, int(ws.Col)
}
