package podrun

// The probes of a foreground `husk pod run`, with kubelet's semantics
// (pkg/kubelet/prober in 1.37): until a container's startup probe has
// succeeded nothing else is probed and the container is neither started
// nor ready; FailureThreshold failures of it in a row kill the container.
// Then liveness (the same kill) and readiness: ready after
// SuccessThreshold successes in a row, not ready after FailureThreshold
// failures; without a readiness probe a started container is ready. A
// killed container is stopped with its preStop hook and the pod's grace
// period, and the Supervisor's restart policy takes it from there.

import (
	"context"
	"fmt"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"github.com/husk-runtime/husk/kubepod"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// probeState is one probe of the current attempt.
type probeState struct {
	next             time.Time
	fails, successes int32
}

// due says whether probe p of a container started at startedAt runs now,
// and if so schedules the next run.
func (ps *probeState) due(p *kubepod.Probe, startedAt, now time.Time) bool {
	if p == nil || now.Before(startedAt.Add(p.InitialDelay)) || now.Before(ps.next) {
		return false
	}
	ps.next = now.Add(p.Period)
	return true
}

// probe runs st's probes that are due on the running attempt cs, in a pod
// whose IP is podIP (empty for a host-network pod). It reports whether
// started or ready changed.
func (s *Supervisor) probe(ctx context.Context, st *supervised, cs *runtimeapi.ContainerStatus, podIP string) (changed bool) {
	if st.killing || cs.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return false
	}
	c, now := st.c, s.now()
	startedAt := time.Unix(0, cs.StartedAt)
	if !st.started {
		if c.Startup != nil {
			if !st.startup.due(c.Startup, startedAt, now) {
				return false
			}
			if err := s.r.runHandler(ctx, st.id, &c.Startup.Handler, podIP, c.Startup.Timeout); err != nil {
				st.startup.fails++
				fmt.Fprintf(s.r.Stderr, "startup probe of %s in pod %s failed (%d of %d): %v\n", c.Name, s.p, st.startup.fails, c.Startup.FailureThreshold, err)
				if st.startup.fails >= c.Startup.FailureThreshold {
					s.kill(ctx, st, "startup", podIP)
				}
				return false
			}
			fmt.Fprintf(s.r.Stderr, "container %s of pod %s started (startup probe succeeded)\n", c.Name, s.p)
		}
		st.started, changed = true, true
	}
	if st.liveness.due(c.Liveness, startedAt, now) {
		if err := s.r.runHandler(ctx, st.id, &c.Liveness.Handler, podIP, c.Liveness.Timeout); err == nil {
			st.liveness.fails = 0
		} else {
			st.liveness.fails++
			fmt.Fprintf(s.r.Stderr, "liveness probe of %s in pod %s failed (%d of %d): %v\n", c.Name, s.p, st.liveness.fails, c.Liveness.FailureThreshold, err)
			if st.liveness.fails >= c.Liveness.FailureThreshold {
				s.kill(ctx, st, "liveness", podIP)
				return changed
			}
		}
	}
	switch {
	case c.Readiness == nil:
		if !st.ready {
			st.ready, changed = true, true
		}
	case st.readiness.due(c.Readiness, startedAt, now):
		rs := &st.readiness
		if err := s.r.runHandler(ctx, st.id, &c.Readiness.Handler, podIP, c.Readiness.Timeout); err == nil {
			rs.fails, rs.successes = 0, rs.successes+1
			if !st.ready && rs.successes >= c.Readiness.SuccessThreshold {
				st.ready, changed = true, true
				fmt.Fprintf(s.r.Stderr, "container %s of pod %s is ready\n", c.Name, s.p)
			}
		} else {
			rs.fails, rs.successes = rs.fails+1, 0
			if st.ready && rs.fails >= c.Readiness.FailureThreshold {
				st.ready, changed = false, true
				fmt.Fprintf(s.r.Stderr, "container %s of pod %s is not ready: readiness probe failed %d times: %v\n", c.Name, s.p, rs.fails, err)
			}
		}
	}
	return changed
}

// kill stops a container that failed its liveness or startup probe.
func (s *Supervisor) kill(ctx context.Context, st *supervised, probe, podIP string) {
	fmt.Fprintf(s.r.Stderr, "container %s of pod %s failed its %s probe; stopping it\n", st.c.Name, s.p, probe)
	s.stopAttempt(ctx, st, "after its "+probe+" probe failed", podIP)
}

// stopAttempt stops st's current attempt, preStop hook first, with the
// pod's grace period, and marks it killing so nothing probes or stops it
// again. Stopping waits out the grace period: not on the Supervisor's
// loop. why ends an error's line.
func (s *Supervisor) stopAttempt(ctx context.Context, st *supervised, why, podIP string) {
	st.killing = true
	id, c, grace := st.id, st.c, s.p.Plan.GracePeriod
	go func() {
		if err := s.r.stopContainer(ctx, id, c.Name, c.PreStop, podIP, grace); err != nil && !criclient.IsNotFound(err) {
			fmt.Fprintf(s.r.Stderr, "husk: %v (%s)\n", err, why)
		}
	}()
}
