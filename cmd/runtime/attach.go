package main

import (
	"fmt"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func attachCmd() *cobra.Command {
	var interactive, tty bool
	cmd := &cobra.Command{
		Use:   "attach [flags] CONTAINER",
		Short: "Attach to a running container's main process",
		Long: `Attach to the stdio of a running container's main process through CRI
Attach and the runtime's streaming server, as kubectl attach does: its
output is shown live from now on (earlier output is in husk logs).
CONTAINER is an ID, a unique ID prefix, a name or pod/name.

-i sends husk's stdin to the process: the container must have been created
with stdin (stdin: true in the Pod YAML, ContainerConfig.stdin in CRI). With
stdinOnce the end of husk's input closes the container's stdin. -t needs a
container created with a terminal (tty: true); with -i on a local terminal
the terminal is put in raw mode, so keys like Ctrl-C go to the container.
A container that has a terminal is always attached through it, since its
output is that terminal. Leaving (Ctrl-C without -t, or closing the
terminal) detaches; the container runs on.`,
		Example: `  husk attach web
  husk attach -i web-pod/reader < input.txt
  husk attach -it shell`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeContainers(true),
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
			name := fmt.Sprintf("container %s (%s)", ct.GetMetadata().GetName(), criclient.ShortID(ct.Id))
			if ct.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
				return fmt.Errorf("attach to %s: it is %s, not running", name, containerStateName(ct.State))
			}
			cfg, known := c.ContainerStdio(ctx, ct.Id)
			if known {
				if interactive && !cfg.Stdin {
					return fmt.Errorf("attach -i to %s: it was created without stdin, so nothing can be sent to it (create it with stdin: true; husk exec -i runs a new process instead)", name)
				}
				if tty && !cfg.Tty {
					return fmt.Errorf("attach -t to %s: it was created without a terminal (tty: true); attach without -t", name)
				}
			}
			lt := newLocalTerminal(interactive, tty)
			if known && cfg.Tty && !lt.tty {
				// The process's only output is its terminal.
				lt.tty = true
			}
			actx, cancel := c.Ctx(ctx)
			resp, err := c.Runtime.Attach(actx, &runtimeapi.AttachRequest{ContainerId: ct.Id,
				Tty: lt.tty, Stdin: interactive, Stdout: true, Stderr: !lt.tty})
			cancel()
			if err != nil {
				return criclient.Wrap(err, "attach to %s", name)
			}
			// Streams last as long as the container or the user: no
			// deadline from --timeout.
			code, err := lt.run(ctx, resp.Url)
			if err != nil {
				return fmt.Errorf("attach to %s: %w", name, err)
			}
			exitWith(c, code)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&interactive, "interactive", "i", false, "send stdin to the container (it must have been created with stdin)")
	f.BoolVarP(&tty, "tty", "t", false, "use the container's terminal, in raw mode with -i (it must have been created with tty)")
	return cmd
}

func containerStateName(s runtimeapi.ContainerState) string {
	switch s {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return "created"
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return "running"
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return "exited"
	}
	return "in an unknown state"
}
