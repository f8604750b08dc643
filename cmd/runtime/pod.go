package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"github.com/husk-runtime/husk/podrun"
	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podFlags are shared by the pod subcommands: where husk pod run keeps
// what the runtime does not (per-pod emptyDir volumes, records) and where
// pod logs go.
var podFlags struct {
	stateDir string
	logRoot  string
}

const defaultStateDir = "/var/lib/husk-cli"

func podCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pod",
		Short: "Run Kubernetes Pod manifests without a cluster",
		Long: `Run Kubernetes Pod manifests on this node through the CRI, translated the
way kubelet translates them, and run them as kubelet and the workload
controllers would. Fields that need a cluster (service account tokens,
PersistentVolumeClaims, scheduling...) are reported as warnings naming the
field; the rest of the pod runs.`,
		Example: `  husk pod run -f web.yaml
  husk pod ls
  husk pod rm web
  husk pod down -f web.yaml`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&podFlags.stateDir, "state-dir", defaultStateDir, "where husk pod run keeps its pod records and emptyDir volumes")
	pf.StringVar(&podFlags.logRoot, "pod-log-root", "/var/log/pods", "root of the pods' log directories (<namespace>_<name>_<uid>)")
	cmd.AddCommand(podRunCmd(), podDownCmd(), podStopCmd(), podRmCmd(), podLsCmd(), podGenerateCmd())
	return cmd
}

func newRunner(c *criclient.Client) *podrun.Runner {
	return &podrun.Runner{Runtime: c.Runtime, Images: c.Images, Timeout: c.Timeout,
		StateDir: podFlags.stateDir, LogRoot: podFlags.logRoot, Stdout: os.Stdout, Stderr: os.Stderr}
}

func podStopCmd() *cobra.Command {
	return podActionCmd(&cobra.Command{
		Use:   "stop NAME|ID...",
		Short: "Stop pods: their containers with the grace period, then the sandbox",
		Example: `  husk pod stop web
  husk pod stop --grace-period 0 default/web 4f2a`,
	}, func(ctx context.Context, r *podrun.Runner, p *runtimeapi.PodSandbox, grace int64) error {
		return r.StopPod(ctx, p.Id, grace)
	})
}

func podRmCmd() *cobra.Command {
	return podActionCmd(&cobra.Command{
		Use:   "rm NAME|ID...",
		Short: "Stop and remove pods, with the volumes and logs husk pod run made for them",
		Example: `  husk pod rm web
  husk pod rm --grace-period 0 $(husk pods -q)`,
	}, func(ctx context.Context, r *podrun.Runner, p *runtimeapi.PodSandbox, grace int64) error {
		return r.RemovePod(ctx, p.Id, p.GetMetadata().GetUid(), grace)
	})
}

// podActionCmd completes cmd into one that finds each pod its arguments
// name and applies act to it with the grace period (--grace-period, or the
// pod's own), printing the id of each pod done; it goes on past a pod that
// fails and reports every failure at the end.
func podActionCmd(cmd *cobra.Command, act func(ctx context.Context, r *podrun.Runner, p *runtimeapi.PodSandbox, grace int64) error) *cobra.Command {
	var grace int64
	cmd.Args = cobra.MinimumNArgs(1)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := dial(10 * time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		r := newRunner(c)
		var errs []error
		for _, a := range args {
			p, err := c.FindPod(cmd.Context(), a)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			g := grace
			if g < 0 {
				g = podrun.GracePeriod(p.Annotations)
			}
			if err := act(cmd.Context(), r, p, g); err != nil {
				errs = append(errs, err)
				continue
			}
			fmt.Println(p.Id)
		}
		return errors.Join(errs...)
	}
	cmd.Flags().Int64Var(&grace, "grace-period", -1, "seconds containers get to exit before SIGKILL (-1: the pod's terminationGracePeriodSeconds)")
	return cmd
}
