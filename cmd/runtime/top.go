package main

import (
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"github.com/husk-runtime/husk/podproc"
	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func topCmd() *cobra.Command {
	var output, procRoot string
	cmd := &cobra.Command{
		Use:   "top POD",
		Short: "List the processes of a pod (reads the node's /proc)",
		Long: `List the processes of a pod: its infra (pause) process, its containers'
processes and anything they started or that was exec'd into them, with PID,
parent PID, user, CPU time, resident memory and command line.

The CRI has no call that lists processes, so husk top reads the node's
/proc: it must run on the node, as root, in the host's PID namespace (not
in a container). The runtime says which processes are the pod's (pod and
container IDs, their main PIDs and the pod's cgroup, from the verbose
PodSandboxStatus and ContainerStatus); husk top then takes every process
whose cgroup is the pod's or one of its containers'. This works with husk
and with containerd, whose cgroups are named by sandbox and container IDs
too. PIDs are the node's; USER is the name in the container's own
/etc/passwd (user namespaces mapped back), else the numeric UID.`,
		Example: `  husk top web
  husk top default/web -o json
  husk --endpoint unix:///run/containerd/containerd.sock top 4f2a`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completePods,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, outTable, outJSON, outYAML); err != nil {
				return err
			}
			c, err := dial(10 * time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := cmd.Context()
			pod, err := c.FindPod(ctx, args[0])
			if err != nil {
				return err
			}
			owners, err := podproc.Find(ctx, c, pod)
			if err != nil {
				return err
			}
			procs, err := podproc.Processes(procRoot, owners)
			if err != nil {
				return err
			}
			name := fmt.Sprintf("pod %s (%s)", pod.GetMetadata().GetName(), criclient.ShortID(pod.Id))
			if len(procs) == 0 {
				if pod.State != runtimeapi.PodSandboxState_SANDBOX_READY {
					return fmt.Errorf("%s is not ready and has no processes", name)
				}
				return fmt.Errorf("no process of %s found in %s: husk top reads the node's /proc, so run it on the node in the host's PID namespace", name, procRoot)
			}
			if output != outTable {
				return printStructured(os.Stdout, output, procs)
			}
			return renderTop(os.Stdout, procs)
		},
	}
	addOutputFlag(cmd, &output, outTable, outTable, outJSON, outYAML)
	cmd.Flags().StringVar(&procRoot, "proc", "/proc", "the node's proc filesystem")
	_ = cmd.Flags().MarkHidden("proc")
	return cmd
}

// cpuTime renders CPU seconds as top's TIME+ does: minutes:seconds.hundredths.
func cpuTime(s float64) string {
	cs := int64(s*100 + 0.5)
	return fmt.Sprintf("%d:%02d.%02d", cs/6000, cs/100%60, cs%100)
}

func renderTop(w io.Writer, ps []podproc.Process) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CONTAINER\tPID\tPPID\tUSER\tTIME\tRSS\tCOMMAND")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\n", p.Container, p.PID, p.PPID, p.User, cpuTime(p.CPUSeconds), humanBytes(p.RSSBytes), p.Command)
	}
	return tw.Flush()
}
