package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"github.com/husk-runtime/husk/kubepod"
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

func podCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pod",
		Short: "Run Kubernetes Pod manifests without a cluster",
		Long: `Run Kubernetes Pod manifests on this node through the CRI, translated the
way kubelet translates them. Fields that need a cluster (Secrets,
ConfigMaps, service account tokens, readiness probes...) are reported as
warnings naming the field; the rest of the pod runs.`,
		Example: `  husk pod run -f web.yaml
  husk pod ls
  husk pod rm web`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&podFlags.stateDir, "state-dir", "/var/lib/husk-cli", "where husk pod run keeps its pod records and emptyDir volumes")
	pf.StringVar(&podFlags.logRoot, "pod-log-root", "/var/log/pods", "root of the pods' log directories (<namespace>_<name>_<uid>)")
	cmd.AddCommand(podRunCmd(), podStopCmd(), podRmCmd(), podLsCmd())
	return cmd
}

func newRunner(c *criclient.Client) *podRunner {
	return &podRunner{c: c, stateDir: podFlags.stateDir, logRoot: podFlags.logRoot, stderr: os.Stderr}
}

func podRunCmd() *cobra.Command {
	var file string
	var detach, keep bool
	cmd := &cobra.Command{
		Use:   "run -f FILE",
		Short: "Run the Pods of a manifest",
		Long: `Run every Pod of a manifest (YAML or JSON, several documents allowed; the
pod template of a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or
CronJob is run once). Images are pulled per imagePullPolicy, init
containers run to completion in order (one that fails stops the pod, as
kubelet does with restartPolicy Never), then the app containers start.

In the foreground, husk pod run streams the containers' logs, runs their
liveness probes (exec, httpGet, tcpSocket; a container failing one is
stopped) and restarts them as the pod's restartPolicy says, with kubelet's
back-off. It returns
when every app container is done for good; Ctrl-C (or SIGTERM) stops the
pod. Either way the pod is then removed, unless --keep.

With --detach it returns once the app containers are started. A detached
pod has no supervisor: its containers are NOT restarted when they exit,
whatever its restartPolicy says, and no probe runs. Stop and remove it with husk pod rm.

Containers without a seccompProfile run with the runtime's default
profile (kubelet's seccompDefault: true).`,
		Example: `  husk pod run -f web.yaml
  husk pod run --detach -f web.yaml
  kubectl create deployment web --image=nginx --dry-run=client -o yaml | husk pod run -f -
  husk --endpoint unix:///run/containerd/containerd.sock pod run -f web.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return errors.New("-f FILE is required (- for stdin)")
			}
			return runPods(cmd.Context(), file, detach, keep)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "filename", "f", "", "manifest to run (- for stdin)")
	f.BoolVarP(&detach, "detach", "d", false, "return once the pod is started; a detached pod's containers are not restarted")
	f.BoolVar(&keep, "keep", false, "leave the pod (stopped) when husk pod run ends or fails, for inspection")
	return cmd
}

func readManifest(file string) ([]kubepod.Source, error) {
	var r io.Reader = os.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("read manifest: %w", err)
		}
		defer f.Close()
		r = f
	}
	srcs, warns, err := kubepod.Decode(r)
	for _, w := range warns {
		warnf("%s", w)
	}
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", file, err)
	}
	return srcs, nil
}

func runPods(parent context.Context, file string, detach, keep bool) error {
	srcs, err := readManifest(file)
	if err != nil {
		return err
	}
	c, err := dial(2 * time.Minute)
	if err != nil {
		return err
	}
	defer c.Close()
	r := newRunner(c)
	dns, err := hostDNS()
	if err != nil {
		return err
	}
	var plans []*kubepod.Plan
	for _, s := range srcs {
		p, err := r.plan(s, dns, len(srcs) > 1)
		if err != nil {
			return err
		}
		plans = append(plans, p)
	}

	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var pods []*runningPod
	var startErr error
	for i, p := range plans {
		rp, err := r.start(ctx, p, srcs[i].Origin, keep)
		if err != nil {
			startErr = err
			break
		}
		pods = append(pods, rp)
		fmt.Printf("pod %s started: %s\n", rp, rp.id)
	}
	if detach {
		if startErr != nil && !keep {
			// Pods of the same manifest go together.
			for _, p := range pods {
				if err := r.removePod(context.WithoutCancel(ctx), p.id, p.plan.UID, p.plan.GracePeriod); err != nil {
					fmt.Fprintf(os.Stderr, "husk: %v\n", err)
				}
			}
		}
		return startErr
	}
	if startErr != nil {
		stop()
		r.finish(pods, keep, ctx.Err() != nil)
		return startErr
	}

	var wg sync.WaitGroup
	errs := make([]error, len(pods))
	for i, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &supervisor{r: r, p: p, stdout: os.Stdout, stderr: os.Stderr}
			if len(pods) > 1 {
				s.logPrefix = p.plan.Name + "/"
			}
			res, err := s.run(ctx)
			switch {
			case errors.Is(err, context.Canceled):
			case err != nil:
				errs[i] = fmt.Errorf("pod %s: %w", p, err)
			case len(res.failed) > 0:
				errs[i] = fmt.Errorf("pod %s failed: %s", p, strings.Join(res.failed, "; "))
			default:
				fmt.Fprintf(os.Stderr, "pod %s completed\n", p)
			}
			if ctx.Err() == nil {
				r.finish([]*runningPod{p}, keep, false)
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		// Signal handling back to the default: a second Ctrl-C ends this
		// process at once and leaves the pods to `husk pod rm`.
		stop()
		r.finish(pods, keep, true)
	}
	return errors.Join(errs...)
}

// finish stops the pods, and removes them unless keep.
func (r *podRunner) finish(pods []*runningPod, keep, interrupted bool) {
	ctx := context.Background()
	for _, p := range pods {
		if interrupted {
			fmt.Fprintf(os.Stderr, "stopping pod %s (grace period %ds; Ctrl-C again leaves it to husk pod rm)\n", p, p.plan.GracePeriod)
		}
		var err error
		if keep {
			err = r.stopPod(ctx, p.id, p.plan.GracePeriod)
			if err == nil {
				fmt.Fprintf(os.Stderr, "pod %s stopped and kept: husk pod rm %s\n", p, criclient.ShortID(p.id))
			}
		} else {
			err = r.removePod(ctx, p.id, p.plan.UID, p.plan.GracePeriod)
		}
		if err != nil && !criclient.IsNotFound(err) {
			fmt.Fprintf(os.Stderr, "husk: %v\n", err)
		}
	}
}

// removePod stops and removes a sandbox, then the CLI's own files of it.
func (r *podRunner) removePod(ctx context.Context, id, uid string, grace int64) error {
	if err := r.stopAndRemove(ctx, id, grace); err != nil {
		return err
	}
	return r.removeFiles(uid)
}

func podStopCmd() *cobra.Command {
	return podActionCmd(&cobra.Command{
		Use:   "stop NAME|ID...",
		Short: "Stop pods: their containers with the grace period, then the sandbox",
		Example: `  husk pod stop web
  husk pod stop --grace-period 0 default/web 4f2a`,
	}, func(ctx context.Context, r *podRunner, p *runtimeapi.PodSandbox, grace int64) error {
		return r.stopPod(ctx, p.Id, grace)
	})
}

func podRmCmd() *cobra.Command {
	return podActionCmd(&cobra.Command{
		Use:   "rm NAME|ID...",
		Short: "Stop and remove pods, with the volumes and logs husk pod run made for them",
		Example: `  husk pod rm web
  husk pod rm --grace-period 0 $(husk pods -q)`,
	}, func(ctx context.Context, r *podRunner, p *runtimeapi.PodSandbox, grace int64) error {
		return r.removePod(ctx, p.Id, p.GetMetadata().GetUid(), grace)
	})
}

// podActionCmd completes cmd into one that finds each pod its arguments
// name and applies act to it with the grace period (--grace-period, or the
// pod's own), printing the id of each pod done; it goes on past a pod that
// fails and reports every failure at the end.
func podActionCmd(cmd *cobra.Command, act func(ctx context.Context, r *podRunner, p *runtimeapi.PodSandbox, grace int64) error) *cobra.Command {
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
				g = gracePeriod(p.Annotations)
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

func podLsCmd() *cobra.Command {
	var output string
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the pods started by husk pod run",
		Example: `  husk pod ls
  husk pod ls -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, outTable, outJSON, outYAML); err != nil {
				return err
			}
			c, ctx, done, err := dialCall(cmd.Context(), 10*time.Second)
			if err != nil {
				return err
			}
			defer done()
			pods, err := c.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
				LabelSelector: map[string]string{kubepod.LabelManaged: "true"}}})
			if err != nil {
				return criclient.Wrap(err, "list pods")
			}
			ctrs, err := c.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
				LabelSelector: map[string]string{kubepod.LabelManaged: "true"}}})
			if err != nil {
				return criclient.Wrap(err, "list containers")
			}
			sortPods(pods.Items)
			if quiet {
				for _, p := range pods.Items {
					fmt.Println(p.Id)
				}
				return nil
			}
			if output != outTable {
				return printProto(os.Stdout, output, pods)
			}
			running, total := map[string]int{}, map[string]map[string]bool{}
			for _, ct := range ctrs.Containers {
				if total[ct.PodSandboxId] == nil {
					total[ct.PodSandboxId] = map[string]bool{}
				}
				total[ct.PodSandboxId][ct.GetMetadata().GetName()] = true
				if ct.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
					running[ct.PodSandboxId]++
				}
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 3, ' ', 0)
			fmt.Fprintln(w, "POD ID\tNAME\tNAMESPACE\tSTATE\tRUNNING\tRESTART POLICY\tCREATED")
			for _, p := range pods.Items {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", criclient.ShortID(p.Id), p.GetMetadata().GetName(), p.GetMetadata().GetNamespace(),
					podState(p.State), running[p.Id], len(total[p.Id]), p.Annotations[kubepod.AnnotationRestartPolicy], ago(p.CreatedAt))
			}
			return w.Flush()
		},
	}
	addOutputFlag(cmd, &output, outTable, outTable, outJSON, outYAML)
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print pod IDs only")
	return cmd
}

func podState(s runtimeapi.PodSandboxState) string {
	switch s {
	case runtimeapi.PodSandboxState_SANDBOX_READY:
		return "Ready"
	case runtimeapi.PodSandboxState_SANDBOX_NOTREADY:
		return "NotReady"
	}
	return s.String()
}
