package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"github.com/husk-runtime/husk/cristats"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// firstGap is the longest wait between the two samples of the first
// figures: CPU % is a rate, and a one-shot `stats --no-stream` should not
// take a whole --interval to answer.
const firstGap = time.Second

func statsCmd() *cobra.Command {
	var output, pod string
	var pods, noStream bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "stats [flags] [CONTAINER...|POD...]",
		Short: "Show live resource usage of containers or pods",
		Long: `Show the CPU and memory usage of running containers (ListContainerStats),
or of pods with --pods (ListPodSandboxStats), refreshed every --interval
like docker stats; on a terminal the table is redrawn in place. Ctrl-C
stops it.

CPU % is the CPU time used between two samples over the time between them:
100% is one core busy. MEM is the working set (what kubelet uses for
eviction: usage minus inactive file cache); LIMIT and MEM % appear when the
container has a memory limit. LAYER is the size of the container's
writable layer. For pods, NET is received/sent on the pod's default
interface and PIDS the number of processes.

Arguments narrow the list: containers (or pods, with --pods) by ID, ID
prefix, name or pod/name (namespace/name).`,
		Example: `  husk stats
  husk stats --no-stream web
  husk stats --pod web-pod --interval 5s
  husk stats --pods
  husk stats -o json`,
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if pods {
				return completePods(cmd, nil, toComplete)
			}
			return completeContainers(true)(cmd, nil, toComplete)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, outTable, outJSON, outYAML); err != nil {
				return err
			}
			if interval <= 0 {
				return fmt.Errorf("--interval %s: must be positive", interval)
			}
			if pods && pod != "" {
				return errors.New("--pod selects containers; with --pods name the pods as arguments")
			}
			c, err := dial(10 * time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			src := cristats.NewSource(c, pods)
			if err := src.Resolve(ctx, args, pod); err != nil {
				return err
			}
			once := noStream || output != outTable
			live := !once && term.IsTerminal(int(os.Stdout.Fd()))
			prev, err := src.Sample(ctx)
			if err != nil {
				return err
			}
			gap := min(interval, firstGap)
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(gap):
				}
				cur, err := src.Sample(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				rows := cristats.Rows(prev, cur)
				switch {
				case output != outTable:
					return printStructured(os.Stdout, output, rows)
				case live:
					// Home and clear, then the table: redrawn in place.
					fmt.Print("\x1b[H\x1b[2J")
				}
				if err := renderStats(os.Stdout, rows, pods); err != nil {
					return err
				}
				if once {
					return nil
				}
				if !live {
					fmt.Println()
				}
				prev, gap = cur, interval
			}
		},
	}
	f := cmd.Flags()
	addOutputFlag(cmd, &output, outTable, outTable, outJSON, outYAML)
	f.BoolVar(&pods, "pods", false, "show pods (ListPodSandboxStats) instead of containers")
	f.StringVarP(&pod, "pod", "p", "", "show the containers of this pod (NAME or ID)")
	f.BoolVar(&noStream, "no-stream", false, "print the figures once and exit")
	f.DurationVar(&interval, "interval", 2*time.Second, "time between refreshes")
	return cmd
}

// renderStats writes the table of containers, or of pods.
func renderStats(w io.Writer, rows []cristats.Row, pods bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	if pods {
		fmt.Fprintln(tw, "POD ID\tNAME\tNAMESPACE\tCPU %\tMEM\tLIMIT\tMEM %\tNET RX/TX\tPIDS")
	} else {
		fmt.Fprintln(tw, "CONTAINER\tNAME\tPOD\tCPU %\tMEM\tLIMIT\tMEM %\tLAYER")
	}
	for _, r := range rows {
		cpu := "--"
		if r.CPUPercent != nil {
			cpu = fmt.Sprintf("%.2f%%", *r.CPUPercent)
		}
		limit, memPct := "-", "-"
		if r.MemoryLimitBytes > 0 {
			limit = humanBytes(r.MemoryLimitBytes)
			memPct = fmt.Sprintf("%.2f%%", float64(r.MemoryWorkingSetBytes)/float64(r.MemoryLimitBytes)*100)
		}
		cols := []string{criclient.ShortID(r.ID), r.Name}
		if pods {
			net, pids := "-", "-"
			if r.NetRxBytes != nil {
				net = humanBytes(*r.NetRxBytes) + " / " + humanBytes(*r.NetTxBytes)
			}
			if r.Processes != nil {
				pids = fmt.Sprint(*r.Processes)
			}
			cols = append(cols, r.Namespace, cpu, humanBytes(r.MemoryWorkingSetBytes), limit, memPct, net, pids)
		} else {
			layer := "-"
			if r.WritableLayerBytes != nil {
				layer = humanBytes(*r.WritableLayerBytes)
			}
			pod := r.Pod
			if pod == "" {
				pod = criclient.ShortID(r.PodID)
			}
			cols = append(cols, pod, cpu, humanBytes(r.MemoryWorkingSetBytes), limit, memPct, layer)
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	return tw.Flush()
}

// humanBytes renders a size in binary units with three significant
// digits, as docker stats does: 812KiB, 12.3MiB, 1.50GiB.
func humanBytes(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	v := float64(n)
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	switch {
	case i == 0:
		return fmt.Sprintf("%dB", n)
	case v >= 100:
		return fmt.Sprintf("%.0f%s", v, units[i])
	case v >= 10:
		return fmt.Sprintf("%.1f%s", v, units[i])
	}
	return fmt.Sprintf("%.2f%s", v, units[i])
}
