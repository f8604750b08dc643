package podrun

// The small supervisor of a foreground `husk pod run`: it restarts app
// containers as the pod's restartPolicy says, with kubelet's back-off, and
// streams their logs. A detached pod has none of this: nothing restarts it.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"github.com/husk-runtime/husk/crilog"
	"github.com/husk-runtime/husk/kubepod"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// kubelet's container restart back-off: 10s, doubled per restart, at most
// 5 minutes, back to 10s after a run of 10 minutes.
const (
	backoffInitial = 10 * time.Second
	backoffMax     = 5 * time.Minute
	backoffReset   = 10 * time.Minute
	pollInterval   = time.Second
)

// ErrPodGone ends the supervision of a pod stopped or removed by
// someone else.
var ErrPodGone = errors.New("pod was stopped or removed outside husk pod run")

type supervised struct {
	c         kubepod.Container
	id        string // the current attempt
	prevID    string // the one dead attempt kept, for logs --previous
	attempt   uint32
	backoff   time.Duration
	nextStart time.Time
	done      bool
	exitCode  int32
	reason    string
	message   string // its termination message
	// probing of the current attempt (probe.go)
	startup, liveness, readiness probeState
	started, ready               bool
	killing                      bool
}

// Supervisor watches one pod the runner started in the foreground.
type Supervisor struct {
	r         *Runner
	p         *Pod
	logPrefix string // before the container name in log lines
	followers sync.WaitGroup
	now       func() time.Time // the clock; tests step their own
	// onRestart, when set, is told of each restart the supervisor
	// schedules (a Job counts them against its backoffLimit).
	onRestart func()
	// deadlineExceeded: the pod ran past activeDeadlineSeconds; its
	// containers are being stopped and none restarts.
	deadlineExceeded bool
}

// NewSupervisor supervises p; logPrefix goes before the container name in
// its log lines (a manifest of several pods names the pod).
func (r *Runner) NewSupervisor(p *Pod, logPrefix string) *Supervisor {
	return &Supervisor{r: r, p: p, logPrefix: logPrefix, now: time.Now}
}

// Result is how a supervised pod ended.
type Result struct {
	Failed []string // "name: exit code N (reason)" of containers that failed
}

func (s *Supervisor) follow(ctx context.Context, name, id string) {
	s.followers.Add(1)
	go func() {
		defer s.followers.Done()
		st, err := s.r.containerStatus(ctx, id)
		if err != nil || st.LogPath == "" {
			return
		}
		exited := func() bool {
			st, err := s.r.containerStatus(ctx, id)
			return err != nil || st.State == runtimeapi.ContainerState_CONTAINER_EXITED
		}
		opts := crilog.Options{Follow: true, Tail: -1, Prefix: "[" + s.logPrefix + name + "] "}
		if err := crilog.Stream(ctx, st.LogPath, opts, s.r.Stdout, s.r.Stderr, exited); err != nil {
			fmt.Fprintf(s.r.Stderr, "husk: log of %s: %v\n", name, err)
		}
	}()
}

// Run supervises until every regular app container is done for good (its
// restartPolicy says no more restarts), the pod is stopped elsewhere, or
// ctx ends.
func (s *Supervisor) Run(ctx context.Context) (*Result, error) {
	ids := s.p.ids
	var states []*supervised
	for _, c := range s.p.Plan.InitContainers {
		if c.Sidecar {
			states = append(states, &supervised{c: c, id: ids[c.Name], backoff: backoffInitial})
		}
	}
	for _, c := range s.p.Plan.Containers {
		states = append(states, &supervised{c: c, id: ids[c.Name], backoff: backoffInitial})
	}
	for _, st := range states {
		s.follow(ctx, st.c.Name, st.id)
	}
	s.writeStatus(states)
	defer s.followers.Wait()
	for {
		done, err := s.step(ctx, states)
		if err != nil || done {
			if err == nil {
				res := &Result{}
				if s.deadlineExceeded {
					res.Failed = append(res.Failed, fmt.Sprintf("DeadlineExceeded: the pod was active longer than activeDeadlineSeconds (%s)", s.p.Plan.ActiveDeadline))
				}
				for _, st := range states {
					if !st.c.Sidecar && st.exitCode != 0 {
						res.Failed = append(res.Failed, fmt.Sprintf("%s: exit code %d (%s)%s", st.c.Name, st.exitCode, st.reason, colonMessage(st.message)))
					}
				}
				return res, nil
			}
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

func (s *Supervisor) step(ctx context.Context, states []*supervised) (bool, error) {
	cctx, cancel := s.r.ctx(ctx)
	ps, err := s.r.Runtime.PodSandboxStatus(cctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: s.p.ID})
	cancel()
	if criclient.IsNotFound(err) || (err == nil && ps.GetStatus().GetState() != runtimeapi.PodSandboxState_SANDBOX_READY) {
		return false, ErrPodGone
	}
	if err != nil {
		return false, criclient.Wrap(err, "status of pod %s", s.p)
	}
	allDone, changed := true, false
	defer func() {
		if changed {
			s.writeStatus(states)
		}
	}()
	if d := s.p.Plan.ActiveDeadline; d > 0 && !s.deadlineExceeded && !s.now().Before(s.p.began.Add(d)) {
		s.exceedDeadline(ctx, states, ps.GetStatus().GetNetwork().GetIp())
	}
	for _, st := range states {
		if st.done {
			continue
		}
		if !st.c.Sidecar {
			allDone = false
		}
		cs, err := s.r.containerStatus(ctx, st.id)
		if criclient.IsNotFound(err) {
			return false, ErrPodGone
		}
		if err != nil {
			return false, err
		}
		if cs.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			if s.probe(ctx, st, cs, ps.GetStatus().GetNetwork().GetIp()) {
				changed = true
			}
			continue
		}
		if st.started || st.ready {
			st.started, st.ready, changed = false, false, true
		}
		restart := st.c.Sidecar
		switch s.p.Plan.RestartPolicy {
		case corev1.RestartPolicyAlways:
			restart = true
		case corev1.RestartPolicyOnFailure:
			restart = restart || cs.ExitCode != 0
		}
		restart = restart && !s.deadlineExceeded
		if !restart {
			st.done, st.exitCode, st.reason = true, cs.ExitCode, cs.Reason
			st.message = terminationMessage(st.c, cs)
			fmt.Fprintf(s.r.Stderr, "container %s of pod %s exited with code %d (%s)%s\n", st.c.Name, s.p, cs.ExitCode, cs.Reason, colonMessage(st.message))
			continue
		}
		if st.nextStart.IsZero() {
			ran := time.Duration(cs.FinishedAt - cs.StartedAt)
			if ran >= backoffReset {
				st.backoff = backoffInitial
			}
			st.nextStart = time.Unix(0, cs.FinishedAt).Add(st.backoff)
			fmt.Fprintf(s.r.Stderr, "container %s of pod %s exited with code %d (%s)%s; restarting in %s\n",
				st.c.Name, s.p, cs.ExitCode, cs.Reason, colonMessage(terminationMessage(st.c, cs)), st.nextStart.Sub(s.now()).Round(time.Second))
			if s.onRestart != nil {
				s.onRestart()
			}
		}
		if s.now().Before(st.nextStart) {
			continue
		}
		id, err := s.r.createStart(ctx, s.p, st.c, st.attempt+1)
		if err != nil {
			// A failed restart is retried after the next back-off, as
			// kubelet would.
			fmt.Fprintf(s.r.Stderr, "husk: restart %s of pod %s: %v\n", st.c.Name, s.p, err)
			if id != "" {
				s.removeContainer(ctx, id)
			}
			st.nextStart = s.now().Add(st.backoff)
			st.backoff = min(2*st.backoff, backoffMax)
			continue
		}
		if st.prevID != "" {
			s.removeContainer(ctx, st.prevID)
		}
		st.prevID, st.id = st.id, id
		st.attempt++
		st.nextStart = time.Time{}
		st.startup, st.liveness, st.readiness = probeState{}, probeState{}, probeState{}
		st.started, st.ready, st.killing = false, false, false
		changed = true // the new attempt's id
		st.backoff = min(2*st.backoff, backoffMax)
		s.follow(ctx, st.c.Name, id)
	}
	return allDone, nil
}

// exceedDeadline is kubelet's answer to a pod past activeDeadlineSeconds:
// every container is stopped (preStop hooks first), none restarts, and
// the pod has failed with reason DeadlineExceeded.
func (s *Supervisor) exceedDeadline(ctx context.Context, states []*supervised, podIP string) {
	s.deadlineExceeded = true
	fmt.Fprintf(s.r.Stderr, "pod %s was active longer than its activeDeadlineSeconds (%s): DeadlineExceeded; stopping its containers\n", s.p, s.p.Plan.ActiveDeadline)
	for _, st := range states {
		if !st.done && !st.killing {
			s.stopAttempt(ctx, st, "DeadlineExceeded", podIP)
		}
	}
}

// colonMessage puts a termination message after a status line.
func colonMessage(m string) string {
	if m == "" {
		return ""
	}
	return ": " + m
}

func (s *Supervisor) removeContainer(ctx context.Context, id string) {
	cctx, cancel := s.r.ctx(ctx)
	defer cancel()
	if _, err := s.r.Runtime.RemoveContainer(cctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil && !criclient.IsNotFound(err) {
		fmt.Fprintf(s.r.Stderr, "husk: %v\n", criclient.Wrap(err, "remove old container %s", criclient.ShortID(id)))
	}
}
