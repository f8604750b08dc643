package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/husk-runtime/husk/cribench"
	"github.com/spf13/cobra"
)

func benchCmd() *cobra.Command {
	var (
		endpoints []string
		command   string
		output    string
		clean     bool
		cfg       cribench.Config
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Run the same CRI workload against one or more runtimes and compare them",
		Long: `Run the same CRI workload against each --endpoint, interleaved in one run
(pod by pod, batch by batch) so that the machine's noise hits all alike:

  - --pods pods started (RunPodSandbox, CreateContainer, StartContainer) and
    removed (StopPodSandbox, RemovePodSandbox) one at a time;
  - --concurrent-pods pods the same way, --concurrency at a time;
  - --list-containers pods with a container each started (the wall time to
    start them all, and later to remove them all, is reported) and kept
    running while ListPodSandbox, ListContainers and the two back to back
    (kubelet's relist) are timed (--list-calls each), ListContainerStats
    (--stats-calls), each call --call-gap after the one before, and the
    memory of the runtime's processes is read from /proc (also on the way,
    at --memory-pods): each pod's monitor (the parent of its infra process:
    husk-shim, containerd-shim-runc-v2), its infra process, and the daemon
    (the process listening on the endpoint's socket), as RSS and PSS (shared
    pages split among their sharers).

Pods and containers are configured as kubelet would (seccomp RuntimeDefault,
a log directory); --image is pulled first on each endpoint. The table shows
p50/p90/p99 per metric and endpoint, and RATIO: the endpoint's p50 divided
by the first endpoint's (below 1 is less time or memory than the first, or
fewer pods per second). Memory is read from /proc, so run it as root on the
runtimes' node.

Everything the bench makes is labelled husk-bench-run=<run id> and removed
before it exits, also when interrupted (Ctrl-C, SIGTERM). A bench killed
outright leaves its pods labelled husk-bench=true: --clean removes them.`,
		Example: `  husk bench --image registry.k8s.io/e2e-test-images/busybox:1.36.1-1 --command 'sleep 3600' \
    --endpoint husk=unix:///run/husk/husk.sock \
    --endpoint containerd=unix:///run/containerd/containerd.sock
  husk bench --image busybox:1.36 --command 'sleep 3600' --pods 20 --concurrent-pods 50 --concurrency 8 -o json
  husk bench --image busybox:1.36 --command 'sleep 3600' --list-containers 500 --memory-pods 100 --endpoint ... --endpoint ...
  husk bench --clean --endpoint unix:///run/containerd/containerd.sock`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, outTable, outJSON); err != nil {
				return err
			}
			if len(endpoints) == 0 {
				endpoints = []string{clientFlags.endpoint}
			}
			if !clean && cfg.Image == "" {
				return errors.New("--image is required: the image of the pods' container, pulled first on each endpoint")
			}
			if cfg.Pods < 0 || cfg.ConcurrentPods < 0 || cfg.Concurrency < 1 || cfg.ListContainers < 0 || cfg.ListCalls < 0 || cfg.StatsCalls < 0 || cfg.MemoryPods < 0 {
				return errors.New("--pods, --concurrent-pods, --list-containers, --list-calls, --stats-calls and --memory-pods must be >= 0, --concurrency >= 1")
			}
			// Interrupted, the bench still removes what it made: the
			// signals stay caught until it returns, so a second Ctrl-C
			// cannot cut the clean-up short.
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			var eps []*cribench.Endpoint
			defer func() {
				for _, e := range eps {
					e.Close()
				}
			}()
			names := map[string]bool{}
			for _, s := range endpoints {
				name, addr, err := cribench.ParseEndpoint(s)
				if err != nil {
					return fmt.Errorf("--endpoint: %w", err)
				}
				e, err := cribench.Dial(ctx, name, addr)
				if err != nil {
					return err
				}
				eps = append(eps, e)
				base := e.Name
				for n := 2; names[e.Name]; n++ { // two endpoints of one runtime
					e.Name = fmt.Sprintf("%s#%d", base, n)
				}
				names[e.Name] = true
			}
			if clean {
				n, err := cribench.Cleanup(context.WithoutCancel(ctx), eps, "")
				fmt.Fprintf(os.Stderr, "removed %d pods labelled %s=true\n", n, cribench.LabelBench)
				return err
			}
			b := make([]byte, 4)
			_, _ = rand.Read(b)
			cfg.RunID = hex.EncodeToString(b)
			cfg.Command = strings.Fields(command)
			cfg.Progress = os.Stderr
			logDir, err := os.MkdirTemp("", "husk-bench-")
			if err != nil {
				return fmt.Errorf("pods' log directory: %w", err)
			}
			// Removed after the pods (Run removes them before returning).
			defer os.RemoveAll(logDir)
			cfg.LogDir = logDir
			fmt.Fprintf(os.Stderr, "husk bench run %s (pods labelled %s=%s)\n", cfg.RunID, cribench.LabelRun, cfg.RunID)
			rep, err := cribench.Run(ctx, cfg, eps)
			if err != nil {
				return err
			}
			if output == outJSON {
				return rep.WriteJSON(os.Stdout)
			}
			fmt.Println(rep.Header())
			if err := rep.WriteTable(os.Stdout); err != nil {
				return err
			}
			for _, row := range rep.Rows {
				if row.Note != "" {
					fmt.Printf("  %s, %s: %s\n", strings.TrimSpace(row.Metric), row.Endpoint, row.Note)
				}
			}
			for _, w := range rep.Warnings {
				fmt.Println("warning:", w)
			}
			return nil
		},
	}
	f := cmd.Flags()
	// Shadows the global --endpoint: repeatable here, with an optional name.
	f.StringArrayVar(&endpoints, "endpoint", nil, "[NAME=]unix:///PATH of a CRI runtime; repeat for each runtime to compare (default: the global --endpoint)")
	f.StringVar(&cfg.Image, "image", "", "image of the pods' container (pulled first on each endpoint)")
	f.StringVar(&command, "command", "", "the container's command, split on spaces, e.g. 'sleep 3600' (default: the image's)")
	f.IntVar(&cfg.Pods, "pods", 20, "pods started and removed one at a time")
	f.IntVar(&cfg.ConcurrentPods, "concurrent-pods", 50, "pods started and removed --concurrency at a time")
	f.IntVar(&cfg.Concurrency, "concurrency", 8, "pods in flight at once in the concurrent and populated phases")
	f.IntVar(&cfg.ListContainers, "list-containers", 50, "pods (one container each) present while lists are timed and memory is read")
	f.IntVar(&cfg.ListCalls, "list-calls", 100, "timed ListContainers and ListPodSandbox calls on each endpoint")
	f.IntVar(&cfg.StatsCalls, "stats-calls", 20, "timed ListContainerStats calls on each endpoint, with the --list-containers pods present")
	f.IntVar(&cfg.MemoryPods, "memory-pods", 0, "also read memory when this many of the --list-containers pods run (0: only with all of them)")
	f.DurationVar(&cfg.Settle, "settle", 2*time.Second, "wait before reading memory, for the runtimes' processes to go idle")
	f.DurationVar(&cfg.CallGap, "call-gap", 250*time.Millisecond, "wait before each timed list and stats call, so that no endpoint's call is timed in the wake of another's")
	f.DurationVar(&cfg.CallTimeout, "call-timeout", 2*time.Minute, "timeout of each CRI call")
	f.BoolVar(&clean, "clean", false, "only remove the pods that any husk bench left (labelled husk-bench=true), and exit")
	addOutputFlag(cmd, &output, outTable, outTable, outJSON)
	return cmd
}
