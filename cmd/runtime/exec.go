package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func execCmd() *cobra.Command {
	var interactive, tty, sync bool
	var execTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "exec [flags] CONTAINER -- COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Long: `Run a command in a running container; husk exec exits with the command's
exit code. CONTAINER is an ID, a unique ID prefix, a name or pod/name.

The command runs through CRI Exec and the runtime's streaming server, as
kubectl exec and crictl exec do: its stdout and stderr are live. With -i
stdin is sent to the command; with -t on a terminal the local terminal is
put in raw mode (restored on exit) and its size follows the local window (a
terminal has one output stream, so the command's stderr arrives on stdout).
With --sync, or --exec-timeout, it runs through CRI ExecSync instead: its
output is printed when it ends, and the runtime kills it after the timeout.`,
		Example: `  husk exec web -- cat /etc/resolv.conf
  husk exec web -- tail -f /var/log/app.log
  husk exec --exec-timeout 5s web-pod/client -- wget -q -O - http://127.0.0.1:8080/
  echo hello | husk exec -i web -- cat
  husk exec -it web -- sh`,
		Args:              cobra.MinimumNArgs(2),
		ValidArgsFunction: completeContainers(true),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 {
				return errors.New("usage: husk exec CONTAINER -- COMMAND [ARG...]")
			}
			sync = sync || execTimeout > 0
			if (interactive || tty) && sync {
				return errors.New("--sync and --exec-timeout apply to exec without -i/-t only")
			}
			// The call lasts as long as the command: no default deadline.
			c, err := dial(0)
			if err != nil {
				return err
			}
			defer c.Close()
			ct, err := c.FindContainer(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			what := fmt.Sprintf("exec in container %s (%s)", ct.GetMetadata().GetName(), criclient.ShortID(ct.Id))
			if !sync {
				term := newLocalTerminal(interactive, tty)
				ctx, cancel := c.Ctx(cmd.Context())
				resp, err := c.Runtime.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: ct.Id, Cmd: args[1:],
					Tty: term.tty, Stdin: interactive, Stdout: true, Stderr: !term.tty})
				cancel()
				if err != nil {
					return criclient.Wrap(err, "%s", what)
				}
				code, err := term.run(cmd.Context(), resp.Url)
				if err != nil {
					return fmt.Errorf("%s: %w", what, err)
				}
				exitWith(c, code)
				return nil
			}
			ctx, cancel := c.Ctx(cmd.Context())
			defer cancel()
			resp, err := c.Runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: ct.Id, Cmd: args[1:], Timeout: int64(execTimeout.Seconds())})
			if err != nil {
				return criclient.Wrap(err, "%s", what)
			}
			_, _ = os.Stdout.Write(resp.Stdout)
			_, _ = os.Stderr.Write(resp.Stderr)
			exitWith(c, int(resp.ExitCode))
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&interactive, "interactive", "i", false, "keep stdin open and send it to the command")
	f.BoolVarP(&tty, "tty", "t", false, "allocate a terminal for the command")
	f.BoolVarP(&sync, "sync", "s", false, "run through ExecSync: output when the command ends (without -i/-t only)")
	f.DurationVar(&execTimeout, "exec-timeout", 0, "kill the command after this long (whole seconds; implies --sync; 0: no limit)")
	return cmd
}

// exitWith ends husk with the command's status when it is not 0: the
// command's status is husk exec's, as with crictl and kubectl, so scripts
// can test it.
func exitWith(c *criclient.Client, code int) {
	if code == 0 {
		return
	}
	c.Close()
	os.Exit(code)
}
