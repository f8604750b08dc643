package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

// podDownOptions are husk pod down's flags.
type podDownOptions struct {
	file  string
	grace int64
}

func podDownCmd() *cobra.Command {
	var o podDownOptions
	cmd := &cobra.Command{
		Use:   "down -f FILE",
		Short: "Remove the pods husk pod run -f FILE made",
		Long: `Stop and remove every pod that husk pod run started from the manifest
(found by the file's path in the pods' records, so replicas and Job pods
with generated names are found too), with the volumes, Secret tmpfs and
logs husk pod run made for them. A manifest on stdin (-f -) matches the
pods it names.`,
		Example: `  husk pod down -f web.yaml
  husk pod down --grace-period 0 -f web.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.file == "" {
				return errors.New("-f FILE is required (- for stdin)")
			}
			srcs, err := readManifest(o.file, nil)
			if err != nil {
				return err
			}
			abs, err := manifestPath(o.file)
			if err != nil {
				return err
			}
			c, err := dial(10 * time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			done, err := newRunner(c).Down(cmd.Context(), abs, srcs, o.grace)
			for _, p := range done {
				fmt.Printf("pod %s removed\n", p)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "filename", "f", "", "manifest the pods were run from (- for stdin)")
	f.Int64Var(&o.grace, "grace-period", -1, "seconds containers get to exit before SIGKILL (-1: each pod's terminationGracePeriodSeconds)")
	return cmd
}
