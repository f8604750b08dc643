package cribench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// What the bench makes carries these labels, so that it (or `husk bench
// --clean` after a bench that was killed outright) finds it again.
const (
	LabelBench = "husk-bench"     // "true" on every pod and container the bench makes
	LabelRun   = "husk-bench-run" // the run's id
	Namespace  = "husk-bench"     // the pods' namespace
)

// Config is the workload.
type Config struct {
	Image          string        `json:"image"`
	Command        []string      `json:"command,omitempty"` // the container's command; empty: the image's
	Pods           int           `json:"pods"`              // started and removed one at a time
	ConcurrentPods int           `json:"concurrentPods"`    // started and removed Concurrency at a time
	Concurrency    int           `json:"concurrency"`
	ListContainers int           `json:"listContainers"` // pods (one container each) present while lists are timed and memory is read
	ListCalls      int           `json:"listCalls"`      // timed ListContainers and ListPodSandbox calls per endpoint
	StatsCalls     int           `json:"statsCalls"`     // timed ListContainerStats calls per endpoint
	MemoryPods     int           `json:"memoryPods"`     // read memory also when this many of the ListContainers pods run (0: only with all)
	Settle         time.Duration `json:"settle"`         // wait before reading memory, for the monitors to go idle
	CallGap        time.Duration `json:"callGap"`        // wait before each timed list or stats call (gap, below)
	CallTimeout    time.Duration `json:"-"`              // bound of each CRI call
	LogDir         string        `json:"-"`              // the pods' log directories are made under it
	RunID          string        `json:"runId"`
	Progress       io.Writer     `json:"-"` // phase lines (nil: none)
}

// Endpoint is one CRI runtime under test.
type Endpoint struct {
	Name, Address string

	conn *grpc.ClientConn
	rt   runtimeapi.RuntimeServiceClient
	img  runtimeapi.ImageServiceClient
	info EndpointInfo

	mu   sync.Mutex
	pods map[string]bool // made by this run and not removed yet
}

// ParseEndpoint splits "[NAME=]unix:///path" (or a bare socket path). The
// name defaults to "".
func ParseEndpoint(s string) (name, address string, err error) {
	if i := strings.Index(s, "="); i > 0 && !strings.ContainsAny(s[:i], "/:") {
		name, s = s[:i], s[i+1:]
	}
	switch {
	case strings.HasPrefix(s, "unix://") && len(s) > len("unix://"):
		address = s
	case strings.HasPrefix(s, "/"):
		address = "unix://" + s
	default:
		return "", "", fmt.Errorf("endpoint %q: want [NAME=]unix:///PATH", s)
	}
	return name, address, nil
}

// Dial connects to an endpoint and asks its runtime's name and version; a
// runtime that does not answer fails here rather than halfway through.
func Dial(ctx context.Context, name, address string) (*Endpoint, error) {
	c, err := criclient.Dial(address, 0)
	if err != nil {
		return nil, err
	}
	conn := c.Conn
	e := &Endpoint{Name: name, Address: address, conn: conn, rt: c.Runtime, img: c.Images, pods: map[string]bool{}}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := e.rt.Version(cctx, &runtimeapi.VersionRequest{})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("runtime at %s: %w", address, err)
	}
	if e.Name == "" {
		e.Name = v.RuntimeName
	}
	e.info = EndpointInfo{Name: e.Name, Address: address, RuntimeName: v.RuntimeName, RuntimeVersion: v.RuntimeVersion}
	return e, nil
}

// Close closes the connection.
func (e *Endpoint) Close() { _ = e.conn.Close() }

func (e *Endpoint) socketPath() string { return strings.TrimPrefix(e.Address, "unix://") }

// bench is one run.
type bench struct {
	cfg     Config
	eps     []*Endpoint
	seq     atomic.Int64
	samples map[string]map[string][]float64 // metric -> endpoint -> values
	units   map[string]string
	metrics []string // in the order first recorded
	notes   map[string]map[string]string
	warns   []string
	mu      sync.Mutex
}

func (b *bench) record(metric, unit, endpoint string, v ...float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.samples[metric]; !ok {
		b.samples[metric] = map[string][]float64{}
		b.units[metric] = unit
		b.metrics = append(b.metrics, metric)
	}
	b.samples[metric][endpoint] = append(b.samples[metric][endpoint], v...)
}

func (b *bench) note(metric, endpoint, note string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.notes[metric] == nil {
		b.notes[metric] = map[string]string{}
	}
	b.notes[metric][endpoint] = note
}

func (b *bench) progress(format string, args ...any) {
	if b.cfg.Progress != nil {
		fmt.Fprintf(b.cfg.Progress, format+"\n", args...)
	}
}

func (b *bench) warn(format string, args ...any) {
	b.mu.Lock()
	b.warns = append(b.warns, fmt.Sprintf(format, args...))
	b.mu.Unlock()
	b.progress("warning: "+format, args...)
}

// call bounds one CRI call. It is not cancelled with the run: a request in
// flight when the bench is interrupted completes, so that what it made is
// known and removed rather than left half-made on the runtime.
func (b *bench) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), b.cfg.CallTimeout)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// rotate returns eps starting at the i-th, so that no endpoint always goes
// first (first after an idle moment, or right after another's burst).
func rotate(eps []*Endpoint, i int) []*Endpoint {
	k := i % len(eps)
	return append(append([]*Endpoint(nil), eps[k:]...), eps[:k]...)
}

// Run runs the workload against every endpoint, interleaved: each phase
// alternates between them pod by pod (or batch by batch), so the machine's
// noise falls on all alike. Whatever happens, also when ctx is cancelled,
// every pod it made is removed before it returns.
func Run(ctx context.Context, cfg Config, eps []*Endpoint) (rep *Report, err error) {
	if len(eps) == 0 {
		return nil, errors.New("no endpoint")
	}
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 2 * time.Minute
	}
	for _, e := range eps {
		e.info.Name = e.Name // the caller may have renamed it
	}
	b := &bench{cfg: cfg, eps: eps, samples: map[string]map[string][]float64{}, units: map[string]string{}, notes: map[string]map[string]string{}}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		defer cancel()
		n, cerr := Cleanup(cctx, eps, cfg.RunID)
		if n > 0 {
			b.progress("removed %d pods left by this run", n)
		}
		err = errors.Join(err, cerr)
	}()

	for _, e := range eps {
		b.progress("%s: pulling %s", e.Name, cfg.Image)
		cctx, cancel := b.call(ctx)
		resp, err := e.img.PullImage(cctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: cfg.Image}})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s: pull %s: %w", e.Name, cfg.Image, err)
		}
		e.info.ImageRef = resp.ImageRef
		if ctx.Err() != nil {
			return nil, fmt.Errorf("interrupted: %w", ctx.Err())
		}
	}
	if err := b.sequential(ctx); err != nil {
		return nil, err
	}
	if err := b.concurrent(ctx); err != nil {
		return nil, err
	}
	if err := b.populated(ctx); err != nil {
		return nil, err
	}
	rep = &Report{Config: cfg, Warnings: b.warns}
	for _, e := range eps {
		rep.Endpoints = append(rep.Endpoints, e.info)
	}
	for _, m := range b.metrics {
		for _, e := range eps {
			rep.add(m, b.units[m], e.Name, Summarize(b.samples[m][e.Name]), b.notes[m][e.Name])
		}
	}
	return rep, nil
}

// startPod runs a sandbox with one container in it, as kubelet would
// (seccomp RuntimeDefault on both, a log directory).
func (b *bench) startPod(ctx context.Context, e *Endpoint) (id string, run, ctr time.Duration, err error) {
	n := b.seq.Add(1)
	name := fmt.Sprintf("bench-%s-%d", b.cfg.RunID, n)
	labels := map[string]string{LabelBench: "true", LabelRun: b.cfg.RunID}
	logDir := filepath.Join(b.cfg.LogDir, e.Name, name)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return "", 0, 0, fmt.Errorf("pod log directory: %w", err)
	}
	seccomp := &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	pod := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: Namespace, Uid: fmt.Sprintf("%s-%d", b.cfg.RunID, n)},
		Hostname:     name,
		LogDirectory: logDir,
		Labels:       labels,
		Linux:        &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{Seccomp: seccomp}},
	}
	cctx, cancel := b.call(ctx)
	defer cancel()
	t0 := time.Now()
	rp, err := e.rt.RunPodSandbox(cctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	if err != nil {
		return "", 0, 0, fmt.Errorf("%s: RunPodSandbox: %w", e.Name, err)
	}
	t1 := time.Now()
	e.mu.Lock()
	e.pods[rp.PodSandboxId] = true
	e.mu.Unlock()
	cr, err := e.rt.CreateContainer(cctx, &runtimeapi.CreateContainerRequest{PodSandboxId: rp.PodSandboxId, SandboxConfig: pod,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
			Image:    &runtimeapi.ImageSpec{Image: e.info.ImageRef, UserSpecifiedImage: b.cfg.Image},
			Command:  b.cfg.Command,
			LogPath:  "app_0.log",
			Labels:   labels,
			Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{Seccomp: seccomp}},
		}})
	if err != nil {
		return rp.PodSandboxId, 0, 0, fmt.Errorf("%s: CreateContainer: %w", e.Name, err)
	}
	if _, err := e.rt.StartContainer(cctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		return rp.PodSandboxId, 0, 0, fmt.Errorf("%s: StartContainer: %w", e.Name, err)
	}
	return rp.PodSandboxId, t1.Sub(t0), time.Since(t1), nil
}

// removePod stops and removes a sandbox, as kubelet does.
func (b *bench) removePod(ctx context.Context, e *Endpoint, id string) (time.Duration, error) {
	cctx, cancel := b.call(ctx)
	defer cancel()
	t0 := time.Now()
	if _, err := e.rt.StopPodSandbox(cctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		return 0, fmt.Errorf("%s: StopPodSandbox %s: %w", e.Name, id, err)
	}
	if _, err := e.rt.RemovePodSandbox(cctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		return 0, fmt.Errorf("%s: RemovePodSandbox %s: %w", e.Name, id, err)
	}
	d := time.Since(t0)
	e.mu.Lock()
	delete(e.pods, id)
	e.mu.Unlock()
	return d, nil
}

// gap waits CallGap before a timed list or stats call. Back to back, each
// endpoint's call would be timed in the wake of the other's: at 500
// containers a ListContainerStats of containerd 2.4 takes seconds, and the
// next endpoint's call would start while its GC and shims still run.
// kubelet spaces these calls (a relist a second, stats every ten or so),
// and the gap does the same for every endpoint. It does not take away the
// load of the other runtimes' pods themselves: husk's ListContainerStats
// at 500 measured 64.0 ms at p50 beside both containerds with a 250 ms
// gap (58.9 ms without) against 21.0 ms with husk alone.
func (b *bench) gap(ctx context.Context) error {
	if b.cfg.CallGap > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(b.cfg.CallGap):
		}
	}
	return interrupted(ctx)
}

func interrupted(ctx context.Context) error {
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	return nil
}

const (
	mStartSeq  = "pod start (run+create+start), sequential"
	mRunSeq    = "  of which RunPodSandbox"
	mRemoveSeq = "pod stop+remove, sequential"
)

func (b *bench) sequential(ctx context.Context) error {
	if b.cfg.Pods <= 0 {
		return nil
	}
	b.progress("sequential: %d pods on each endpoint", b.cfg.Pods)
	for i := 0; i < b.cfg.Pods; i++ {
		for _, e := range rotate(b.eps, i) {
			if err := interrupted(ctx); err != nil {
				return err
			}
			id, run, ctr, err := b.startPod(ctx, e)
			if err != nil {
				return err
			}
			rm, err := b.removePod(ctx, e, id)
			if err != nil {
				return err
			}
			b.record(mStartSeq, UnitMs, e.Name, ms(run+ctr))
			b.record(mRunSeq, UnitMs, e.Name, ms(run))
			b.record(mRemoveSeq, UnitMs, e.Name, ms(rm))
		}
	}
	return nil
}

// startBatch starts k pods at once on e and returns the ids of those
// started; each pod's start time is recorded under metric.
func (b *bench) startBatch(ctx context.Context, e *Endpoint, k int, metric string) ([]string, time.Duration, error) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ids  []string
		errs []error
	)
	t0 := time.Now()
	for j := 0; j < k; j++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, run, ctr, err := b.startPod(ctx, e)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			ids = append(ids, id)
			if metric != "" {
				b.record(metric, UnitMs, e.Name, ms(run+ctr))
			}
		}()
	}
	wg.Wait()
	return ids, time.Since(t0), errors.Join(errs...)
}

// removeBatch removes the given pods at once.
func (b *bench) removeBatch(ctx context.Context, e *Endpoint, ids []string, metric string) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := b.removePod(ctx, e, id)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			if metric != "" {
				b.record(metric, UnitMs, e.Name, ms(d))
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (b *bench) concurrent(ctx context.Context) error {
	total, c := b.cfg.ConcurrentPods, b.cfg.Concurrency
	if total <= 0 {
		return nil
	}
	mStart := fmt.Sprintf("pod start, concurrency %d", c)
	mRemove := fmt.Sprintf("pod stop+remove, concurrency %d", c)
	mRate := fmt.Sprintf("pods started per second, concurrency %d", c)
	b.progress("concurrent: %d pods on each endpoint, %d at a time", total, c)
	wall := map[string]time.Duration{}
	started := map[string]int{}
	for r := 0; r*c < total; r++ {
		k := min(c, total-r*c)
		for _, e := range rotate(b.eps, r) {
			if err := interrupted(ctx); err != nil {
				return err
			}
			ids, d, err := b.startBatch(ctx, e, k, mStart)
			wall[e.Name] += d
			started[e.Name] += len(ids)
			rerr := b.removeBatch(ctx, e, ids, mRemove)
			if err := errors.Join(err, rerr); err != nil {
				return err
			}
		}
	}
	for _, e := range b.eps {
		if wall[e.Name] > 0 {
			b.record(mRate, UnitPodsSec, e.Name, float64(started[e.Name])/wall[e.Name].Seconds())
		}
	}
	return nil
}

// populated starts ListContainers pods (a container each) on every
// endpoint, batch by batch, reads the memory of the runtime's processes
// (also on the way, at MemoryPods), times list calls, and removes the
// pods. The start and removal of them all are timed as walls.
func (b *bench) populated(ctx context.Context) error {
	m, c := b.cfg.ListContainers, b.cfg.Concurrency
	if m <= 0 {
		return nil
	}
	b.progress("populated: %d pods with a container each on each endpoint", m)
	pods := map[string][]string{}
	wall := map[string]time.Duration{}
	var err error
	fill := func(target int) {
		for r := 0; err == nil; r++ {
			k := min(c, target-len(pods[b.eps[0].Name]))
			if k <= 0 {
				return
			}
			for _, e := range rotate(b.eps, r) {
				if err = interrupted(ctx); err != nil {
					return
				}
				var ids []string
				var d time.Duration
				ids, d, err = b.startBatch(ctx, e, k, "")
				pods[e.Name] = append(pods[e.Name], ids...)
				wall[e.Name] += d
				if err != nil {
					return
				}
			}
		}
	}
	readMemory := func(n int, suffix string) {
		if err != nil {
			return
		}
		b.progress("memory at %d pods: settling %s", n, b.cfg.Settle)
		select {
		case <-ctx.Done():
		case <-time.After(b.cfg.Settle):
		}
		if err = interrupted(ctx); err == nil {
			for _, e := range b.eps {
				b.memory(ctx, e, pods[e.Name], suffix)
			}
		}
	}
	if mp := b.cfg.MemoryPods; mp > 0 && mp < m {
		fill(mp)
		readMemory(mp, fmt.Sprintf(", %d pods", mp))
		fill(m)
		readMemory(m, fmt.Sprintf(", %d pods", m))
	} else {
		fill(m)
		readMemory(m, "")
	}
	if err == nil {
		mWall := fmt.Sprintf("%d pods started, concurrency %d, wall", m, c)
		for _, e := range b.eps {
			b.record(mWall, UnitS, e.Name, wall[e.Name].Seconds())
		}
		err = b.lists(ctx, m)
	}
	if err == nil {
		err = b.statsLists(ctx, m)
	}
	mRmWall := fmt.Sprintf("%d pods stopped and removed, concurrency %d, wall", m, c)
	for _, e := range b.eps {
		t0 := time.Now()
		var rerr error
		for i := 0; i < len(pods[e.Name]); i += c {
			rerr = errors.Join(rerr, b.removeBatch(ctx, e, pods[e.Name][i:min(i+c, len(pods[e.Name]))], ""))
		}
		if rerr == nil && err == nil {
			b.record(mRmWall, UnitS, e.Name, time.Since(t0).Seconds())
		}
		err = errors.Join(err, rerr)
	}
	return err
}

func (b *bench) lists(ctx context.Context, m int) error {
	mCtr := fmt.Sprintf("ListContainers, %d containers present", m)
	mPod := fmt.Sprintf("ListPodSandbox, %d pods present", m)
	// What kubelet's PLEG does every second: both lists back to back.
	mRelist := fmt.Sprintf("relist (ListPodSandbox+ListContainers), %d pods", m)
	b.progress("lists: %d calls of each on each endpoint", b.cfg.ListCalls)
	for i := 0; i < b.cfg.ListCalls; i++ {
		for _, e := range rotate(b.eps, i) {
			if err := b.gap(ctx); err != nil {
				return err
			}
			cctx, cancel := b.call(ctx)
			t0 := time.Now()
			pr, err := e.rt.ListPodSandbox(cctx, &runtimeapi.ListPodSandboxRequest{})
			t1 := time.Now()
			if err != nil {
				cancel()
				return fmt.Errorf("%s: ListPodSandbox: %w", e.Name, err)
			}
			cr, err := e.rt.ListContainers(cctx, &runtimeapi.ListContainersRequest{})
			t2 := time.Now()
			cancel()
			if err != nil {
				return fmt.Errorf("%s: ListContainers: %w", e.Name, err)
			}
			b.record(mCtr, UnitMs, e.Name, ms(t2.Sub(t1)))
			b.record(mPod, UnitMs, e.Name, ms(t1.Sub(t0)))
			b.record(mRelist, UnitMs, e.Name, ms(t2.Sub(t0)))
			if i == 0 {
				b.note(mCtr, e.Name, fmt.Sprintf("%d containers listed", len(cr.Containers)))
				b.note(mPod, e.Name, fmt.Sprintf("%d pods listed", len(pr.Items)))
			}
		}
	}
	return nil
}

// statsLists times ListContainerStats, as kubelet's summary API calls it.
func (b *bench) statsLists(ctx context.Context, m int) error {
	if b.cfg.StatsCalls <= 0 {
		return nil
	}
	mStats := fmt.Sprintf("ListContainerStats, %d containers present", m)
	b.progress("stats: %d ListContainerStats calls on each endpoint", b.cfg.StatsCalls)
	for i := 0; i < b.cfg.StatsCalls; i++ {
		for _, e := range rotate(b.eps, i) {
			if err := b.gap(ctx); err != nil {
				return err
			}
			cctx, cancel := b.call(ctx)
			t0 := time.Now()
			r, err := e.rt.ListContainerStats(cctx, &runtimeapi.ListContainerStatsRequest{})
			d := time.Since(t0)
			cancel()
			if err != nil {
				return fmt.Errorf("%s: ListContainerStats: %w", e.Name, err)
			}
			b.record(mStats, UnitMs, e.Name, ms(d))
			if i == 0 {
				b.note(mStats, e.Name, fmt.Sprintf("%d containers' stats", len(r.Stats)))
			}
		}
	}
	return nil
}

const (
	mMonRSS    = "monitor RSS per pod"
	mMonPSS    = "monitor PSS per pod"
	mInfraPSS  = "infra (pause) PSS per pod"
	mDaemonRSS = "daemon RSS"
	mDaemonPSS = "daemon PSS"
)

// memory reads, from /proc, the memory of the pods' monitor processes (the
// parent of each pod's infra process: husk-shim, containerd-shim-runc-v2),
// of their infra processes and of the daemon (the process listening on
// the endpoint's socket). A monitor serving several pods is shared among
// them. What cannot be read is a warning, not a failure.
func (b *bench) memory(ctx context.Context, e *Endpoint, pods []string, suffix string) {
	mMonRSS, mMonPSS, mInfraPSS, mDaemonRSS, mDaemonPSS := mMonRSS+suffix, mMonPSS+suffix, mInfraPSS+suffix, mDaemonRSS+suffix, mDaemonPSS+suffix
	monitors := map[int]int{} // pid -> pods it serves
	var infra []float64
	comm := ""
	for _, id := range pods {
		cctx, cancel := b.call(ctx)
		st, err := e.rt.PodSandboxStatus(cctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
		cancel()
		if err != nil {
			b.warn("%s: PodSandboxStatus %s: %v", e.Name, id, err)
			continue
		}
		pid := infoPid(st.Info)
		if pid == 0 {
			b.warn("%s: pod %s: no infra pid in the verbose status: no memory figures", e.Name, id)
			return
		}
		if mem, err := ProcMemory(pid); err == nil {
			infra = append(infra, mem.PSS)
		}
		ppid, err := ParentPid(pid)
		if err != nil || ppid <= 1 {
			b.warn("%s: pod %s: infra process %d has no monitor parent (ppid %d, %v)", e.Name, id, pid, ppid, err)
			continue
		}
		monitors[ppid]++
		comm = Comm(ppid)
	}
	var rss, pss []float64
	for pid, n := range monitors {
		mem, err := ProcMemory(pid)
		if err != nil {
			b.warn("%s: %v", e.Name, err)
			continue
		}
		for i := 0; i < n; i++ {
			rss = append(rss, mem.RSS/1024/float64(n))
			pss = append(pss, mem.PSS/1024/float64(n))
		}
	}
	b.record(mMonRSS, UnitMiB, e.Name, rss...)
	b.record(mMonPSS, UnitMiB, e.Name, pss...)
	note := fmt.Sprintf("%d %s processes for %d pods", len(monitors), comm, len(pods))
	b.note(mMonPSS, e.Name, note)
	b.record(mInfraPSS, UnitKiB, e.Name, infra...)

	pid, err := ListenerPid(e.socketPath())
	if err != nil {
		b.warn("%s: daemon memory: %v", e.Name, err)
		b.record(mDaemonRSS, UnitMiB, e.Name)
		b.record(mDaemonPSS, UnitMiB, e.Name)
		return
	}
	e.info.DaemonPid = pid
	mem, err := ProcMemory(pid)
	if err != nil {
		b.warn("%s: daemon memory: %v", e.Name, err)
		return
	}
	b.record(mDaemonRSS, UnitMiB, e.Name, mem.RSS/1024)
	b.record(mDaemonPSS, UnitMiB, e.Name, mem.PSS/1024)
	b.note(mDaemonRSS, e.Name, fmt.Sprintf("pid %d (%s)", pid, Comm(pid)))
}

// infoPid finds the infra process id in a verbose PodSandboxStatus: husk
// and containerd both put a JSON object with "pid" under "info".
func infoPid(info map[string]string) int {
	var v struct {
		Pid int `json:"pid"`
	}
	if s, ok := info["info"]; ok && json.Unmarshal([]byte(s), &v) == nil && v.Pid > 0 {
		return v.Pid
	}
	for _, s := range info {
		if json.Unmarshal([]byte(s), &v) == nil && v.Pid > 0 {
			return v.Pid
		}
	}
	return 0
}

// Cleanup stops and removes, on every endpoint, the pods labelled with
// runID (every pod any husk bench made, when runID is ""), and the pods
// this process made that the runtime still lists. It returns how many it
// removed.
func Cleanup(ctx context.Context, eps []*Endpoint, runID string) (int, error) {
	sel := map[string]string{LabelRun: runID}
	if runID == "" {
		sel = map[string]string{LabelBench: "true"}
	}
	removed := 0
	var errs []error
	for _, e := range eps {
		// Twice: a request the runtime was still serving when the first
		// list was taken may have made a pod after it.
		for pass := 0; pass < 2; pass++ {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			resp, err := e.rt.ListPodSandbox(cctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{LabelSelector: sel}})
			cancel()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: list the bench's pods: %w", e.Name, err))
				break
			}
			ids := map[string]bool{}
			for _, p := range resp.Items {
				ids[p.Id] = true
			}
			e.mu.Lock()
			for id := range e.pods {
				ids[id] = true
			}
			e.mu.Unlock()
			if len(ids) == 0 {
				break
			}
			for id := range ids {
				cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				_, err := e.rt.StopPodSandbox(cctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
				if err == nil || status.Code(err) == codes.NotFound {
					_, err = e.rt.RemovePodSandbox(cctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
				}
				cancel()
				switch {
				case err == nil:
					removed++
				case status.Code(err) == codes.NotFound:
				default:
					errs = append(errs, fmt.Errorf("%s: remove pod %s: %w", e.Name, id, err))
					continue
				}
				e.mu.Lock()
				delete(e.pods, id)
				e.mu.Unlock()
			}
			if pass == 0 {
				time.Sleep(500 * time.Millisecond)
			}
		}
	}
	return removed, errors.Join(errs...)
}
