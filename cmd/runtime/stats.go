package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
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
			src := &statsSource{c: c, pods: pods}
			if err := src.resolve(ctx, args, pod); err != nil {
				return err
			}
			once := noStream || output != outTable
			live := !once && term.IsTerminal(int(os.Stdout.Fd()))
			prev, err := src.sample(ctx)
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
				cur, err := src.sample(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				rows := statsRows(prev, cur)
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

// statsSource lists the stats of the selected containers or pods.
type statsSource struct {
	c    *criclient.Client
	pods bool
	ids  map[string]bool // selected by arguments; nil: all
	pod  string          // --pod: only this pod's containers
}

// resolve turns the arguments into IDs once: the selection stays the same
// objects while the display refreshes.
func (s *statsSource) resolve(ctx context.Context, args []string, pod string) error {
	if pod != "" {
		p, err := s.c.FindPod(ctx, pod)
		if err != nil {
			return err
		}
		s.pod = p.Id
	}
	if len(args) == 0 {
		return nil
	}
	s.ids = map[string]bool{}
	for _, a := range args {
		if s.pods {
			p, err := s.c.FindPod(ctx, a)
			if err != nil {
				return err
			}
			s.ids[p.Id] = true
			continue
		}
		ct, err := s.c.FindContainer(ctx, a)
		if err != nil {
			return err
		}
		s.ids[ct.Id] = true
	}
	return nil
}

// statsSample is one reading of every selected object, by ID.
type statsSample map[string]*statsEntry

// statsEntry is one object's reading, with the names shown beside it.
type statsEntry struct {
	id, name, podID, podName, namespace string
	cpu                                 *runtimeapi.CpuUsage
	mem                                 *runtimeapi.MemoryUsage
	layer                               *runtimeapi.FilesystemUsage
	net                                 *runtimeapi.NetworkUsage
	procs                               *runtimeapi.ProcessUsage
}

func (s *statsSource) sample(ctx context.Context) (statsSample, error) {
	cctx, cancel := s.c.Ctx(ctx)
	defer cancel()
	out := statsSample{}
	if s.pods {
		resp, err := s.c.Runtime.ListPodSandboxStats(cctx, &runtimeapi.ListPodSandboxStatsRequest{})
		if err != nil {
			return nil, criclient.Wrap(err, "list pod stats")
		}
		for _, st := range resp.Stats {
			a := st.GetAttributes()
			if s.ids != nil && !s.ids[a.GetId()] {
				continue
			}
			lx := st.GetLinux()
			out[a.GetId()] = &statsEntry{id: a.GetId(), name: a.GetMetadata().GetName(), namespace: a.GetMetadata().GetNamespace(),
				cpu: lx.GetCpu(), mem: lx.GetMemory(), net: lx.GetNetwork(), procs: lx.GetProcess()}
		}
		return out, nil
	}
	filter := &runtimeapi.ContainerStatsFilter{PodSandboxId: s.pod}
	resp, err := s.c.Runtime.ListContainerStats(cctx, &runtimeapi.ListContainerStatsRequest{Filter: filter})
	if err != nil {
		return nil, criclient.Wrap(err, "list container stats")
	}
	// Stats carry no pod: the container and pod lists give it a name.
	cl, err := s.c.Runtime.ListContainers(cctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, criclient.Wrap(err, "list containers")
	}
	pl, err := s.c.Runtime.ListPodSandbox(cctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return nil, criclient.Wrap(err, "list pods")
	}
	podOf := map[string]string{}
	for _, ct := range cl.Containers {
		podOf[ct.Id] = ct.PodSandboxId
	}
	podNames := map[string]string{}
	for _, p := range pl.Items {
		podNames[p.Id] = p.GetMetadata().GetName()
	}
	for _, st := range resp.Stats {
		a := st.GetAttributes()
		if s.ids != nil && !s.ids[a.GetId()] {
			continue
		}
		out[a.GetId()] = &statsEntry{id: a.GetId(), name: a.GetMetadata().GetName(), podID: podOf[a.GetId()],
			podName: podNames[podOf[a.GetId()]], cpu: st.GetCpu(), mem: st.GetMemory(), layer: st.GetWritableLayer()}
	}
	return out, nil
}

// statsRow is one line of the table, and one object of -o json|yaml.
type statsRow struct {
	ID                    string   `json:"id"`
	Name                  string   `json:"name"`
	PodID                 string   `json:"podId,omitempty"`
	Pod                   string   `json:"pod,omitempty"`
	Namespace             string   `json:"namespace,omitempty"`
	CPUPercent            *float64 `json:"cpuPercent"` // nil: not known (one sample only)
	MemoryWorkingSetBytes uint64   `json:"memoryWorkingSetBytes"`
	MemoryLimitBytes      uint64   `json:"memoryLimitBytes,omitempty"` // 0: no limit
	WritableLayerBytes    *uint64  `json:"writableLayerBytes,omitempty"`
	NetRxBytes            *uint64  `json:"netRxBytes,omitempty"`
	NetTxBytes            *uint64  `json:"netTxBytes,omitempty"`
	Processes             *uint64  `json:"processes,omitempty"`
}

// cpuPercent is the CPU used between two readings of a cumulative
// counter, in percent of one core. It is unknown (false) when the
// readings do not advance in time or the counter went backwards (the
// container restarted under the same ID, or the runtime reset it).
func cpuPercent(prev, cur *runtimeapi.CpuUsage) (float64, bool) {
	if prev == nil || cur == nil || prev.UsageCoreNanoSeconds == nil || cur.UsageCoreNanoSeconds == nil {
		return 0, false
	}
	dt := cur.Timestamp - prev.Timestamp
	p, c := prev.UsageCoreNanoSeconds.Value, cur.UsageCoreNanoSeconds.Value
	if dt <= 0 || c < p {
		return 0, false
	}
	return float64(c-p) / float64(dt) * 100, true
}

// memoryLimit is the limit CRI implies: available_bytes is "limit minus
// working set" and is only set when there is a limit.
func memoryLimit(m *runtimeapi.MemoryUsage) uint64 {
	if m.GetAvailableBytes() == nil {
		return 0
	}
	return m.GetWorkingSetBytes().GetValue() + m.GetAvailableBytes().GetValue()
}

// statsRows pairs two samples into rows, sorted by pod then name. An
// object only in cur (just started) has no CPU % yet unless the runtime
// reports its own rate.
func statsRows(prev, cur statsSample) []statsRow {
	rows := make([]statsRow, 0, len(cur))
	for id, e := range cur {
		r := statsRow{ID: id, Name: e.name, PodID: e.podID, Pod: e.podName, Namespace: e.namespace,
			MemoryWorkingSetBytes: e.mem.GetWorkingSetBytes().GetValue(), MemoryLimitBytes: memoryLimit(e.mem)}
		var before *runtimeapi.CpuUsage
		if p := prev[id]; p != nil {
			before = p.cpu
		}
		if pct, ok := cpuPercent(before, e.cpu); ok {
			r.CPUPercent = &pct
		} else if nc := e.cpu.GetUsageNanoCores(); nc != nil {
			pct := float64(nc.Value) / 1e7
			r.CPUPercent = &pct
		}
		if e.layer != nil && e.layer.UsedBytes != nil {
			r.WritableLayerBytes = &e.layer.UsedBytes.Value
		}
		if n := e.net.GetDefaultInterface(); n != nil {
			rx, tx := n.GetRxBytes().GetValue(), n.GetTxBytes().GetValue()
			r.NetRxBytes, r.NetTxBytes = &rx, &tx
		}
		if e.procs.GetProcessCount() != nil {
			pc := e.procs.GetProcessCount().GetValue()
			r.Processes = &pc
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Pod != b.Pod {
			return a.Pod < b.Pod
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.ID < b.ID
	})
	return rows
}

// renderStats writes the table of containers, or of pods.
func renderStats(w io.Writer, rows []statsRow, pods bool) error {
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
