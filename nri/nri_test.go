package nri

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	"github.com/husk-runtime/husk/sandbox"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeSource stands in for the manager at the package boundary.
type fakeSource struct {
	mu      sync.Mutex
	pods    []sandbox.PodView
	ctrs    []sandbox.ContainerView
	updates map[string]*runtimeapi.LinuxContainerResources
}

func (f *fakeSource) Snapshot(context.Context) ([]sandbox.PodView, []sandbox.ContainerView) {
	return f.pods, f.ctrs
}

func (f *fakeSource) ContainerSpec(string) (*specs.Spec, error) {
	return &specs.Spec{Process: &specs.Process{Args: []string{"from-disk"}}, Linux: &specs.Linux{}}, nil
}

func (f *fakeSource) ApplyPluginResources(_ context.Context, id string, res *runtimeapi.LinuxContainerResources) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates[id] = res
	return nil
}

func (f *fakeSource) StopContainer(context.Context, string, int64) error { return nil }

// recorder is an NRI plugin that records the events it is told of.
type recorder struct {
	mu     sync.Mutex
	events []string
	synced []string
}

func (p *recorder) add(ev, id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, ev+" "+id)
}

func (p *recorder) got() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

func (p *recorder) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, x := range pods {
		p.synced = append(p.synced, "pod "+x.GetId())
	}
	for _, x := range ctrs {
		p.synced = append(p.synced, "ctr "+x.GetId()+" "+strings.Join(x.GetArgs(), " "))
	}
	// A plugin may ask for updates in its synchronization.
	u := &api.ContainerUpdate{ContainerId: "old"}
	u.SetLinuxMemoryLimit(32 << 20)
	return []*api.ContainerUpdate{u}, nil
}

func (p *recorder) RunPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.add("RunPodSandbox", pod.GetId())
	return nil
}

func (p *recorder) StopPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.add("StopPodSandbox", pod.GetId())
	return nil
}

func (p *recorder) RemovePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.add("RemovePodSandbox", pod.GetId())
	return nil
}

func (p *recorder) CreateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	p.add("CreateContainer", c.GetId())
	a := &api.ContainerAdjustment{}
	a.AddEnv("ADJUSTED", c.GetName())
	return a, nil, nil
}

func (p *recorder) StopContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) ([]*api.ContainerUpdate, error) {
	p.add("StopContainer "+c.GetState().String(), c.GetId())
	return nil, nil
}

func (p *recorder) RemoveContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.add("RemoveContainer", c.GetId())
	return nil
}

func pod(id string) sandbox.PodView {
	return sandbox.PodView{Pod: sandbox.Pod{ID: id, Config: &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "n-" + id, Namespace: "ns", Uid: "u-" + id}}}}
}

func ctr(podID, id string, st sandbox.ContainerState) sandbox.ContainerView {
	return sandbox.ContainerView{Container: sandbox.Container{ID: id, PodID: podID, State: st,
		Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "c-" + id}}}}
}

// newRuntime is an NRI runtime, not started, with its socket and plugin
// dirs in dir.
func newRuntime(tb testing.TB, dir string) *Runtime {
	tb.Helper()
	r, err := New(Config{SocketPath: filepath.Join(dir, "nri.sock"), PluginPath: filepath.Join(dir, "plugins"),
		PluginConfigPath: filepath.Join(dir, "conf"), RequestTimeout: 2 * time.Second, RegistrationTimeout: 5 * time.Second},
		"husk", "test", slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// connect starts a recorder plugin (NRI's stub) on the socket in dir,
// stopped when t ends.
func connect(t *testing.T, ctx context.Context, dir string) *recorder {
	t.Helper()
	rec := &recorder{}
	s, err := stub.New(rec, stub.WithPluginName("rec"), stub.WithPluginIdx("00"), stub.WithSocketPath(filepath.Join(dir, "nri.sock")))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return rec
}

// TestLifecycleOnce drives a real NRI runtime over a unix socket with a
// real plugin (NRI's stub): a plugin connecting is synchronized (and its
// updates applied), is told each stop and removal once whichever path
// reports it first, in order, and its adjustment reaches the spec.
func TestLifecycleOnce(t *testing.T) {
	dir := t.TempDir()
	src := &fakeSource{pods: []sandbox.PodView{pod("p0")}, ctrs: []sandbox.ContainerView{ctr("p0", "old", sandbox.ContainerRunning)},
		updates: map[string]*runtimeapi.LinuxContainerResources{}}
	r := newRuntime(t, dir)
	if err := r.Start(src); err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := connect(t, ctx, dir)
	// Registration ends before the synchronization has been applied.
	deadline := time.Now().Add(10 * time.Second)
	for {
		src.mu.Lock()
		u := src.updates["old"]
		src.mu.Unlock()
		if u != nil {
			if u.GetMemoryLimitInBytes() != 32<<20 {
				t.Errorf("update of the synchronization: %v", u)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the plugin's update in its synchronization was not applied")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The plugin joins the event list after the synchronization, which
	// holds the sync lock until then.
	r.BlockSync()()
	rec.mu.Lock()
	synced := slices.Clone(rec.synced)
	rec.mu.Unlock()
	if want := []string{"pod p0", "ctr old from-disk"}; !slices.Equal(synced, want) {
		t.Errorf("synchronized with %v, want %v", synced, want)
	}

	p1 := pod("p1")
	if err := r.RunPod(ctx, p1); err != nil {
		t.Fatal(err)
	}
	spec := &specs.Spec{Process: &specs.Process{Args: []string{"sleep"}, Env: []string{"A=1"}}, Linux: &specs.Linux{}}
	a, b := ctr("p1", "a", sandbox.ContainerCreating), ctr("p1", "b", sandbox.ContainerCreating)
	for _, c := range []sandbox.ContainerView{a, b} {
		if err := r.CreateContainer(ctx, p1, c, spec); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Contains(spec.Process.Env, "ADJUSTED=c-b") {
		t.Errorf("env after the plugin's adjustment: %v", spec.Process.Env)
	}
	a.State = sandbox.ContainerExited
	r.StopContainer(ctx, p1, a)
	r.StopContainer(ctx, p1, a) // the exit watcher, late
	r.StopPod(ctx, p1)          // b is told stopped first
	r.StopPod(ctx, p1)          // StopPodSandbox again: told once
	r.RemoveContainer(ctx, p1, a)
	r.StopContainer(ctx, p1, a) // later still: removed, nothing to tell
	r.RemovePod(ctx, p1)        // b is told removed first
	r.RemovePod(ctx, p0())      // the synchronized pod: stopped, then removed

	want := []string{
		"RunPodSandbox p1", "CreateContainer a", "CreateContainer b",
		"StopContainer CONTAINER_STOPPED a",
		"StopContainer CONTAINER_STOPPED b", "StopPodSandbox p1",
		"RemoveContainer a",
		"RemoveContainer b", "RemovePodSandbox p1",
		"StopContainer CONTAINER_STOPPED old", "RemoveContainer old", "StopPodSandbox p0", "RemovePodSandbox p0",
	}
	if got := rec.got(); !slices.Equal(got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
}

func p0() sandbox.PodView { return pod("p0") }

// TestSocketInUse: a socket another runtime serves is left alone.
func TestSocketInUse(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SocketPath: filepath.Join(dir, "nri.sock"), PluginPath: filepath.Join(dir, "plugins"), PluginConfigPath: filepath.Join(dir, "conf")}
	log := slog.New(slog.DiscardHandler)
	first, err := New(cfg, "husk", "test", log)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(&fakeSource{}); err != nil {
		t.Fatal(err)
	}
	defer first.Stop()
	second, err := New(cfg, "husk", "test", log)
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Start(&fakeSource{}); err == nil || !strings.Contains(err.Error(), "served by another process") {
		t.Fatalf("second NRI runtime on the same socket: %v", err)
	}
	if !socketServed(cfg.SocketPath) {
		t.Error("the first runtime's socket was taken away")
	}
}

// TestLogger: NRI's messages carry component=nri, and its error about the
// WASM host husk leaves out on purpose is a debug line.
func TestLogger(t *testing.T) {
	var buf strings.Builder
	l := newLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx := context.Background()
	l.Errorf(ctx, "failed to initialize WASM support: %v", "WASM support is disabled (at build time)")
	l.Errorf(ctx, "plugin %s failed", "x")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "level=DEBUG") || !strings.Contains(lines[1], "level=ERROR") {
		t.Fatalf("log lines:\n%s", buf.String())
	}
	for _, line := range lines {
		if !strings.Contains(line, "component=nri") {
			t.Errorf("line without component=nri: %s", line)
		}
	}
}

// With no plugin connected, the events the manager sends under BlockSync
// are not converted or delivered, but their bookkeeping is kept: a plugin
// connecting later is synchronized with what was made meanwhile and is
// told of its stop and removal.
func TestIdleSkips(t *testing.T) {
	dir := t.TempDir()
	src := &fakeSource{updates: map[string]*runtimeapi.LinuxContainerResources{}}
	r := newRuntime(t, dir)
	if r.idle() {
		t.Fatal("idle before the adaptation counted its plugins")
	}
	if err := r.Start(src); err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	if !r.idle() {
		t.Fatal("not idle once started with no plugin")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p1 := pod("p1")
	if err := r.RunPod(ctx, p1); err != nil {
		t.Fatal(err)
	}
	a := ctr("p1", "a", sandbox.ContainerCreating)
	spec := &specs.Spec{Process: &specs.Process{Args: []string{"sleep"}}, Linux: &specs.Linux{}}
	if err := r.CreateContainer(ctx, p1, a, spec); err != nil {
		t.Fatal(err)
	}
	a.State = sandbox.ContainerRunning
	src.mu.Lock()
	src.pods, src.ctrs = []sandbox.PodView{p1}, []sandbox.ContainerView{a}
	src.mu.Unlock()

	rec := connect(t, ctx, dir)
	deadline := time.Now().Add(10 * time.Second)
	for r.idle() {
		if time.Now().After(deadline) {
			t.Fatal("still idle with a plugin connected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.BlockSync()()
	rec.mu.Lock()
	synced := slices.Clone(rec.synced)
	rec.mu.Unlock()
	if want := []string{"pod p1", "ctr a sleep"}; !slices.Equal(synced, want) {
		t.Errorf("synchronized with %v, want %v (the spec kept while idle)", synced, want)
	}
	b := ctr("p1", "b", sandbox.ContainerCreating)
	if err := r.CreateContainer(ctx, p1, b, &specs.Spec{Process: &specs.Process{}, Linux: &specs.Linux{}}); err != nil {
		t.Fatal(err)
	}
	r.StopPod(ctx, p1)
	want := []string{"CreateContainer b", "StopContainer CONTAINER_STOPPED a", "StopContainer CONTAINER_STOPPED b", "StopPodSandbox p1"}
	if got := rec.got(); !slices.Equal(got, want) {
		t.Errorf("events after the plugin connected:\n got %q\nwant %q", got, want)
	}
}

// BenchmarkCreateContainerNoPlugin is CreateContainer's cost with no
// plugin connected, delivered (as before the count was kept) and skipped
// (idle).
func BenchmarkCreateContainerNoPlugin(b *testing.B) {
	dir := b.TempDir()
	r := newRuntime(b, dir)
	if err := r.Start(&fakeSource{}); err != nil {
		b.Fatal(err)
	}
	defer r.Stop()
	ctx := context.Background()
	p := pod("p")
	spec := benchSpec()
	for _, mode := range []struct {
		name  string
		count int64
	}{{"delivered", -1}, {"idle", 0}} {
		b.Run(mode.name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				r.plugins.n.Store(mode.count) // a delivery counts the plugins
				c := ctr("p", fmt.Sprintf("c%d", i), sandbox.ContainerCreating)
				if err := r.CreateContainer(ctx, p, c, spec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchSpec is a container's spec as the manager makes one: the default
// capabilities and the RuntimeDefault seccomp profile (most of what the
// conversion copies).
func benchSpec() *specs.Spec {
	caps := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
		"CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}
	s := &specs.Spec{
		Process: &specs.Process{Args: []string{"sleep", "3600"}, Env: []string{"PATH=/usr/bin:/bin", "HOSTNAME=x"},
			Capabilities: &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}},
		Linux: &specs.Linux{},
	}
	prof, err := seccomp.GetDefaultProfile(s)
	if err != nil {
		panic(err)
	}
	s.Linux.Seccomp = prof
	return s
}
