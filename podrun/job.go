package podrun

// A Job's pods, made as the Job controller makes them (pkg/controller/job
// in Kubernetes 1.37): up to parallelism at once until completions of them
// have succeeded; a failed pod (restartPolicy Never) or a container
// restart (OnFailure) counts against backoffLimit, and the Job fails when
// the count passes it, its running pods stopped. A failed pod is replaced
// after the controller's back-off: 10s, doubled per failure, at most 6
// minutes.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/husk-runtime/husk/kubepod"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	jobBackoffInitial = 10 * time.Second
	jobBackoffMax     = 6 * time.Minute
)

// errBackoffLimit ends a Job's pods once it has failed too often,
// errDeadline once it has run longer than its activeDeadlineSeconds.
var (
	errBackoffLimit = errors.New("backoffLimit reached")
	errDeadline     = errors.New("DeadlineExceeded: the job was active longer than activeDeadlineSeconds")
)

// jobRun is one Job of the manifest.
type jobRun struct {
	src      kubepod.Source
	dns      *runtimeapi.DNSConfig
	several  bool          // the manifest has more than this Job (warnings name the pod)
	prefixed bool          // log lines name the pod
	first    *kubepod.Plan // translated up front, so a bad template runs nothing
	made     int
}

// plan is the Job's next pod: a fresh name and uid, as the controller
// would create.
func (r *Runner) jobPlan(j *jobRun) (*kubepod.Plan, error) {
	defer func() { j.made++ }()
	if j.made == 0 && j.first != nil {
		return j.first, nil
	}
	src := j.src
	src.Replica = j.made
	return r.Plan(src, j.dns, j.several)
}

// startJobDetached starts the Job's first pods and leaves them: nobody
// replaces a failed one.
func (r *Runner) startJobDetached(ctx context.Context, j *jobRun, opts RunOptions) ([]*Pod, error) {
	spec := j.src.Job
	fmt.Fprintf(r.Stderr, "warning: Job/%s: detached, its pods are not replaced when they fail (backoffLimit and further completions need husk pod run in the foreground)\n", spec.Name)
	var pods []*Pod
	for range min(spec.Parallelism, spec.Completions) {
		plan, err := r.jobPlan(j)
		if err != nil {
			return pods, err
		}
		p, err := r.Start(ctx, plan, opts.File, opts.Keep)
		if err != nil {
			return pods, err
		}
		pods = append(pods, p)
		fmt.Fprintf(r.Stdout, "pod %s started: %s\n", p, p.ID)
	}
	return pods, nil
}

// runJob runs the Job to success or failure (an error), or until ctx ends
// (nil: the user stopped it).
func (r *Runner) runJob(parent context.Context, j *jobRun, opts RunOptions) error {
	spec := j.src.Job
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	if spec.ActiveDeadline > 0 {
		t := time.AfterFunc(spec.ActiveDeadline, func() {
			fmt.Fprintf(r.Stderr, "job %s was active longer than its activeDeadlineSeconds (%s); stopping its pods\n", spec.Name, spec.ActiveDeadline)
			cancel(errDeadline)
		})
		defer t.Stop()
	}
	type ended struct {
		p      *Pod
		failed []string
		err    error
	}
	ends := make(chan ended)
	restarts := make(chan struct{})
	active := map[*Pod]bool{}
	var succeeded, failures int32
	var notBefore time.Time // the back-off after the last failure
	backoff := jobBackoffInitial
	fail := func(why string) {
		if failures > spec.BackoffLimit && context.Cause(ctx) == nil {
			fmt.Fprintf(r.Stderr, "job %s failed: %s; %d failures, backoffLimit %d\n", spec.Name, why, failures, spec.BackoffLimit)
			cancel(errBackoffLimit)
		}
	}
	start := func() error {
		plan, err := r.jobPlan(j)
		if err != nil {
			return err
		}
		p, err := r.Start(ctx, plan, opts.File, opts.Keep)
		if err != nil {
			return err
		}
		fmt.Fprintf(r.Stdout, "pod %s started: %s (job %s)\n", p, p.ID, spec.Name)
		active[p] = true
		prefix := ""
		if j.prefixed || spec.Parallelism > 1 {
			prefix = p.Plan.Name + "/"
		}
		s := r.NewSupervisor(p, prefix)
		s.onRestart = func() {
			select {
			case restarts <- struct{}{}:
			case <-ctx.Done():
			}
		}
		go func() {
			res, err := s.Run(ctx)
			e := ended{p: p, err: err}
			if res != nil {
				e.failed = res.Failed
			}
			ends <- e
		}()
		return nil
	}

	var jobErr error
	for context.Cause(ctx) == nil || len(active) > 0 {
		if context.Cause(ctx) == nil {
			for int32(len(active)) < spec.Parallelism && succeeded+int32(len(active)) < spec.Completions && !time.Now().Before(notBefore) {
				if err := start(); err != nil {
					jobErr = fmt.Errorf("job %s: %w", spec.Name, err)
					cancel(err)
					break
				}
			}
			if succeeded == spec.Completions {
				fmt.Fprintf(r.Stderr, "job %s succeeded: %d of %d completions, %d failures\n", spec.Name, succeeded, spec.Completions, failures)
				return nil
			}
		}
		var wake <-chan time.Time
		if d := time.Until(notBefore); d > 0 && context.Cause(ctx) == nil {
			wake = time.After(d)
		}
		select {
		case e := <-ends:
			delete(active, e.p)
			switch {
			case errors.Is(e.err, context.Canceled):
			case e.err != nil:
				failures++
				fmt.Fprintf(r.Stderr, "pod %s of job %s: %v\n", e.p, spec.Name, e.err)
				fail("pod " + e.p.Plan.Name + " " + e.err.Error())
			case len(e.failed) > 0:
				failures++
				fmt.Fprintf(r.Stderr, "pod %s of job %s failed: %s\n", e.p, spec.Name, strings.Join(e.failed, "; "))
				fail("pod " + e.p.Plan.Name + " failed")
				if context.Cause(ctx) == nil {
					notBefore = time.Now().Add(backoff)
					fmt.Fprintf(r.Stderr, "job %s: a new pod in %s (%d of %d failures allowed)\n", spec.Name, backoff, failures, spec.BackoffLimit)
					backoff = min(2*backoff, jobBackoffMax)
				}
			default:
				succeeded++
				fmt.Fprintf(r.Stderr, "pod %s of job %s completed (%d of %d)\n", e.p, spec.Name, succeeded, spec.Completions)
			}
			r.Finish([]*Pod{e.p}, opts.Keep, parent.Err() != nil)
		case <-restarts:
			failures++
			fail("a container restarted")
		case <-wake:
		case <-ctx.Done():
			if parent.Err() != nil {
				opts.release()
			}
			// The supervisors end on ctx too: wait for them above.
			if len(active) == 0 {
				break
			}
			e := <-ends
			delete(active, e.p)
			r.Finish([]*Pod{e.p}, opts.Keep, parent.Err() != nil)
		}
	}
	if jobErr != nil {
		return jobErr
	}
	if errors.Is(context.Cause(ctx), errDeadline) {
		return fmt.Errorf("job %s failed: %w (%s)", spec.Name, errDeadline, spec.ActiveDeadline)
	}
	if errors.Is(context.Cause(ctx), errBackoffLimit) {
		return fmt.Errorf("job %s failed: %w (%d failures, limit %d)", spec.Name, errBackoffLimit, failures, spec.BackoffLimit)
	}
	return nil
}
