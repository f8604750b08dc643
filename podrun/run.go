package podrun

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/husk-runtime/husk/criclient"
	"github.com/husk-runtime/husk/kubepod"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RunOptions say how Run treats a manifest's pods.
type RunOptions struct {
	// Detach returns once the app containers are started: nothing
	// restarts them or probes them afterwards.
	Detach bool
	// Keep leaves the pods, stopped, when the run ends or fails.
	Keep bool
	// File is the manifest's absolute path (empty for stdin), kept in
	// each pod's record for `husk pod down`.
	File string
	// Release, when set, is called once the user interrupted the run
	// (ctx cancelled) and the pods are being stopped: the CLI gives the
	// signals back to their default there, so a second Ctrl-C ends it.
	Release func()
}

func (o RunOptions) release() {
	if o.Release != nil {
		o.Release()
	}
}

// Run translates the manifest's pods (every one before any starts, so a
// bad one runs nothing), starts them in order and, unless detached,
// supervises them until each is done for good or ctx ends; then it stops
// them and removes them (unless Keep). A Job's pods are made by its own
// loop (job.go). Pods of one manifest go together: when one fails to
// start, those already started go too.
func (r *Runner) Run(ctx context.Context, srcs []kubepod.Source, dns *runtimeapi.DNSConfig, opts RunOptions) error {
	var plans []*kubepod.Plan
	var jobs []*jobRun
	for _, s := range srcs {
		p, err := r.Plan(s, dns, len(srcs) > 1)
		if err != nil {
			return err
		}
		if s.Job != nil {
			jobs = append(jobs, &jobRun{src: s, dns: dns, several: len(srcs) > 1, first: p})
		} else {
			plans = append(plans, p)
		}
	}
	if opts.Detach {
		for _, p := range plans {
			if p.ActiveDeadline > 0 {
				fmt.Fprintf(r.Stderr, "warning: %s: spec.activeDeadlineSeconds: not enforced on a detached pod (nothing supervises it)\n", p.Origin)
			}
		}
	}
	var pods []*Pod
	var startErr error
	for _, p := range plans {
		rp, err := r.Start(ctx, p, opts.File, opts.Keep)
		if err != nil {
			startErr = err
			break
		}
		pods = append(pods, rp)
		fmt.Fprintf(r.Stdout, "pod %s started: %s\n", rp, rp.ID)
	}
	if opts.Detach {
		for _, j := range jobs {
			if startErr != nil {
				break
			}
			var started []*Pod
			started, startErr = r.startJobDetached(ctx, j, opts)
			pods = append(pods, started...)
		}
		if startErr != nil && !opts.Keep {
			for _, p := range pods {
				if err := r.RemovePod(context.WithoutCancel(ctx), p.ID, p.Plan.UID, p.Plan.GracePeriod); err != nil {
					fmt.Fprintf(r.Stderr, "husk: %v\n", err)
				}
			}
		}
		return startErr
	}
	if startErr != nil {
		opts.release()
		r.Finish(pods, opts.Keep, ctx.Err() != nil)
		return startErr
	}

	several := len(pods)+len(jobs) > 1
	var wg sync.WaitGroup
	errs := make([]error, len(pods)+len(jobs))
	for i, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prefix := ""
			if several {
				prefix = p.Plan.Name + "/"
			}
			res, err := r.NewSupervisor(p, prefix).Run(ctx)
			switch {
			case errors.Is(err, context.Canceled):
			case err != nil:
				errs[i] = fmt.Errorf("pod %s: %w", p, err)
			case len(res.Failed) > 0:
				errs[i] = fmt.Errorf("pod %s failed: %s", p, strings.Join(res.Failed, "; "))
			default:
				fmt.Fprintf(r.Stderr, "pod %s completed\n", p)
			}
			if ctx.Err() == nil {
				r.Finish([]*Pod{p}, opts.Keep, false)
			}
		}()
	}
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j.prefixed = several
			errs[len(pods)+i] = r.runJob(ctx, j, opts)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		opts.release()
		r.Finish(pods, opts.Keep, true)
	}
	return errors.Join(errs...)
}

// Finish stops the pods, and removes them unless keep.
func (r *Runner) Finish(pods []*Pod, keep, interrupted bool) {
	ctx := context.Background()
	for _, p := range pods {
		if interrupted {
			fmt.Fprintf(r.Stderr, "stopping pod %s (grace period %ds; Ctrl-C again leaves it to husk pod rm)\n", p, p.Plan.GracePeriod)
		}
		var err error
		if keep {
			err = r.StopPod(ctx, p.ID, p.Plan.GracePeriod)
			if err == nil {
				fmt.Fprintf(r.Stderr, "pod %s stopped and kept: husk pod rm %s\n", p, criclient.ShortID(p.ID))
			}
		} else {
			err = r.RemovePod(ctx, p.ID, p.Plan.UID, p.Plan.GracePeriod)
		}
		if err != nil && !criclient.IsNotFound(err) {
			fmt.Fprintf(r.Stderr, "husk: %v\n", err)
		}
	}
}

// RemovePod stops and removes a sandbox, then the runner's own files of
// it (its record, emptyDir volumes and log dir).
func (r *Runner) RemovePod(ctx context.Context, id, uid string, grace int64) error {
	if err := r.stopAndRemove(ctx, id, grace); err != nil {
		return err
	}
	return r.RemoveFiles(uid)
}
