package main

import (
	"fmt"
	"os"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"github.com/husk-runtime/husk/crilog"
	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func logsCmd() *cobra.Command {
	var opts crilog.Options
	var since time.Duration
	var tail int
	var previous bool
	cmd := &cobra.Command{
		Use:   "logs [flags] CONTAINER",
		Short: "Print a container's log (both streams, from its CRI log file)",
		Long: `Print a container's log from the CRI log file its runtime writes
(ContainerStatus.LogPath): stdout lines to stdout, stderr lines to stderr,
lines the runtime split joined again. CONTAINER is an ID, a unique ID
prefix, a name or pod/name; the latest restart of a name is shown.`,
		Example: `  husk logs web
  husk logs -f --tail 20 web-pod/server
  husk logs --since 5m --timestamps 4f2a
  husk logs --previous server     # the restart before the current one`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := dial(10 * time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := cmd.Context()
			ct, err := c.FindContainer(ctx, args[0])
			if err != nil {
				return err
			}
			st, err := c.ContainerStatus(ctx, ct.Id)
			if err != nil {
				return err
			}
			path := st.GetLogPath()
			if previous {
				prev, err := c.PreviousAttempt(ctx, ct)
				if err != nil {
					return err
				}
				if st, err = c.ContainerStatus(ctx, prev.Id); err != nil {
					return err
				}
				path = st.GetLogPath()
				opts.Follow = false
			}
			if path == "" {
				return fmt.Errorf("container %s has no log path (created without a log directory)", criclient.ShortID(ct.Id))
			}
			opts.Tail = tail
			if since > 0 {
				opts.Since = time.Now().Add(-since)
			}
			id := st.GetId()
			exited := func() bool {
				s, err := c.ContainerStatus(ctx, id)
				return err != nil || s.State == runtimeapi.ContainerState_CONTAINER_EXITED
			}
			return crilog.Stream(ctx, path, opts, os.Stdout, os.Stderr, exited)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.Follow, "follow", "f", false, "follow the log until the container exits")
	f.IntVar(&tail, "tail", -1, "print only the last N lines (-1: all)")
	f.DurationVar(&since, "since", 0, "print only lines newer than this, e.g. 10s or 5m")
	f.BoolVarP(&opts.Timestamps, "timestamps", "t", false, "print each line's timestamp")
	f.BoolVarP(&previous, "previous", "p", false, "print the log of the restart before the current one")
	return cmd
}
