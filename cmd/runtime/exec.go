package main

import (
	"errors"
	"os"
	"time"

	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func execCmd() *cobra.Command {
	var interactive, tty bool
	var execTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "exec [flags] CONTAINER -- COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Long: `Run a command in a running container through the CRI's ExecSync and print
its stdout and stderr; husk exec exits with the command's exit code.
CONTAINER is an ID, a unique ID prefix, a name or pod/name.

Interactive sessions (-i, -t) are not implemented yet: use
crictl exec -it meanwhile.`,
		Example: `  husk exec web -- cat /etc/resolv.conf
  husk exec --exec-timeout 5s web-pod/client -- wget -q -O - http://127.0.0.1:8080/`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if interactive || tty {
				return errors.New("exec -i/-t is not implemented yet; use crictl exec -it meanwhile")
			}
			if cmd.ArgsLenAtDash() != 1 {
				return errors.New("usage: husk exec CONTAINER -- COMMAND [ARG...]")
			}
			// The call lasts as long as the command: no default deadline.
			c, err := dial(0)
			if err != nil {
				return err
			}
			defer c.Close()
			ct, err := c.findContainer(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			ctx, cancel := c.ctx(cmd.Context())
			defer cancel()
			resp, err := c.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: ct.Id, Cmd: args[1:], Timeout: int64(execTimeout.Seconds())})
			if err != nil {
				return rpcErr(err, "exec in container %s (%s)", ct.GetMetadata().GetName(), shortID(ct.Id))
			}
			_, _ = os.Stdout.Write(resp.Stdout)
			_, _ = os.Stderr.Write(resp.Stderr)
			if resp.ExitCode != 0 {
				c.Close()
				// The command's status is husk exec's, as with crictl and
				// kubectl, so scripts can test it.
				os.Exit(int(resp.ExitCode))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&interactive, "interactive", "i", false, "keep stdin open (not implemented yet)")
	f.BoolVarP(&tty, "tty", "t", false, "allocate a terminal (not implemented yet)")
	f.DurationVar(&execTimeout, "exec-timeout", 0, "kill the command after this long (whole seconds; 0: no limit)")
	return cmd
}
