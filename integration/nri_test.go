package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// nriPlugin is an NRI plugin for the tests, on NRI's stub library: it
// records what it is told and adjusts each container it is asked about
// with adjust, if set.
type nriPlugin struct {
	name   string
	stub   stub.Stub
	adjust func(*api.Container) *api.ContainerAdjustment
	// onRunPod runs in the plugin's RunPodSandbox handler.
	onRunPod   func(context.Context)
	onCreate   func()
	mu         sync.Mutex
	events     []string // "Event id"
	syncedPods []string
	syncedCtrs []string
	closed     chan struct{}
	connMu     sync.Mutex
	conn       net.Conn
}

func startNRIPlugin(t *testing.T, d *Daemon, name, idx string, setup func(*nriPlugin)) *nriPlugin {
	t.Helper()
	p := &nriPlugin{name: name, closed: make(chan struct{})}
	if setup != nil {
		setup(p)
	}
	s, err := stub.New(p, stub.WithPluginName(name), stub.WithPluginIdx(idx), stub.WithSocketPath(d.NRISocket),
		stub.WithOnClose(func() { close(p.closed) }),
		stub.WithDialer(func(path string) (net.Conn, error) {
			c, err := net.Dial("unix", path)
			p.connMu.Lock()
			p.conn = c
			p.connMu.Unlock()
			return c, err
		}))
	if err != nil {
		t.Fatal(err)
	}
	p.stub = s
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("NRI plugin %s: %v", name, err)
	}
	t.Cleanup(s.Stop)
	// Start returns at registration; the runtime sends the plugin events
	// only once its synchronization is done, which NRI logs.
	// (The text log quotes the message: its quotes come escaped.)
	synced := fmt.Sprintf(`plugin \"%s-%s\" connected and synchronized`, idx, name)
	waitFor(t, 20*time.Second, "NRI to log "+synced, func() bool { return strings.Contains(d.Log(), synced) })
	return p
}

// crash cuts the plugin's connection, as a plugin process dying would.
func (p *nriPlugin) crash() {
	p.connMu.Lock()
	defer p.connMu.Unlock()
	p.conn.Close()
}

func (p *nriPlugin) record(ev, id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, ev+" "+id)
}

// eventsOf is the events recorded for id, in order.
func (p *nriPlugin) eventsOf(id string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, e := range p.events {
		if ev, eid, _ := strings.Cut(e, " "); eid == id {
			out = append(out, ev)
		}
	}
	return out
}

func (p *nriPlugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, x := range pods {
		p.syncedPods = append(p.syncedPods, x.GetId())
	}
	for _, x := range ctrs {
		p.syncedCtrs = append(p.syncedCtrs, x.GetId())
	}
	return nil, nil
}

func (p *nriPlugin) RunPodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	p.record("RunPodSandbox", pod.GetId())
	if p.onRunPod != nil {
		p.onRunPod(ctx)
	}
	return nil
}

func (p *nriPlugin) StopPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("StopPodSandbox", pod.GetId())
	return nil
}

func (p *nriPlugin) RemovePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("RemovePodSandbox", pod.GetId())
	return nil
}

func (p *nriPlugin) CreateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	p.record("CreateContainer", c.GetId())
	if p.onCreate != nil {
		p.onCreate()
	}
	if p.adjust == nil {
		return nil, nil, nil
	}
	return p.adjust(c), nil, nil
}

func (p *nriPlugin) StartContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("StartContainer", c.GetId())
	return nil
}

func (p *nriPlugin) StopContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) ([]*api.ContainerUpdate, error) {
	p.record("StopContainer", c.GetId())
	return nil, nil
}

func (p *nriPlugin) RemoveContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("RemoveContainer", c.GetId())
	return nil
}

// TestNRI connects NRI plugins to a daemon: a plugin that joins late is
// synchronized with the pod already there; its adjustment of env, a mount
// and the memory limit is what the container gets (inside it and in its
// cgroup); each pod and container event reaches it once, in order; and a
// plugin that answers late or dies mid-request delays pod and container
// creation by at most the configured request timeout, then is dropped.
func TestNRI(t *testing.T) {
	ref := busyboxRef(t)
	const timeout = 2 // nri.request_timeout_seconds
	d := StartDaemonWith(t, DaemonOptions{NRIRequestTimeoutSeconds: timeout})
	pull(t, d, ref)
	ctx := ctxT(t, 3*time.Minute)

	early := podConfig("nri-early")
	earlyID := runPod(t, d, early)

	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "hello"), []byte("from the plugin\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const limit = 48 << 20
	adj := startNRIPlugin(t, d, "adjust", "10", func(p *nriPlugin) {
		p.adjust = func(*api.Container) *api.ContainerAdjustment {
			a := &api.ContainerAdjustment{}
			a.AddEnv("NRI_ADJUSTED", "yes")
			a.AddMount(&api.Mount{Destination: "/nri-data", Source: data, Type: "bind", Options: []string{"rbind", "ro"}})
			a.SetLinuxMemoryLimit(limit)
			return a
		}
	})
	// The stub's Start returns at registration, before the runtime's
	// synchronization reaches it.
	waitFor(t, 10*time.Second, "the late plugin's synchronization to name pod "+earlyID, func() bool {
		adj.mu.Lock()
		defer adj.mu.Unlock()
		return slices.Contains(adj.syncedPods, earlyID)
	})

	pod := podConfig("nri")
	podID := runPod(t, d, pod)
	ctr := runContainer(t, d, podID, pod, ctrConfig("adjusted", ref, "sleep", "3600"))
	if got := strings.TrimSpace(execOut(t, d, ctr, "sh", "-c", "echo $NRI_ADJUSTED")); got != "yes" {
		t.Errorf("env NRI_ADJUSTED inside the container: %q, want yes", got)
	}
	if got := execOut(t, d, ctr, "cat", "/nri-data/hello"); got != "from the plugin\n" {
		t.Errorf("the plugin's mount inside the container: %q", got)
	}
	if out, err := d.RT.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: ctr, Cmd: []string{"touch", "/nri-data/x"}, Timeout: 20}); err != nil || out.ExitCode == 0 {
		t.Errorf("the plugin's read-only mount was writable: %v, exit %d", err, out.GetExitCode())
	}
	if got := memoryLimit(t, "/husk/"+podID+"/"+ctr); got != limit {
		t.Errorf("memory limit in the container's cgroup: %d, want the plugin's %d", got, limit)
	}

	// A container that exits on its own is told stopped without a
	// StopContainer call.
	short := runContainer(t, d, podID, pod, ctrConfig("short", ref, "sh", "-c", "exit 3"))
	waitFor(t, 30*time.Second, "the plugin to be told the short container stopped", func() bool {
		return slices.Contains(adj.eventsOf(short), "StopContainer")
	})

	if _, err := d.RT.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.RT.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, d, podID)
	want := map[string][]string{
		podID: {"RunPodSandbox", "StopPodSandbox", "RemovePodSandbox"},
		ctr:   {"CreateContainer", "StartContainer", "StopContainer", "RemoveContainer"},
		short: {"CreateContainer", "StartContainer", "StopContainer", "RemoveContainer"},
	}
	for id, w := range want {
		if got := adj.eventsOf(id); !slices.Equal(got, w) {
			t.Errorf("events of %s: %v, want %v", id, got, w)
		}
	}

	// A plugin that answers late.
	release := make(chan struct{})
	defer close(release)
	slow := startNRIPlugin(t, d, "slow", "20", func(p *nriPlugin) {
		p.onRunPod = func(ctx context.Context) {
			select {
			case <-release:
			case <-time.After(time.Minute):
			}
		}
	})
	late := podConfig("nri-late")
	start := time.Now()
	lateID := runPod(t, d, late)
	took := time.Since(start)
	// The bound is the timeout plus a pod's own start, with room for a
	// busy machine: what it rules out is waiting on the plugin (a minute).
	if took > time.Duration(timeout)*time.Second+20*time.Second {
		t.Errorf("RunPodSandbox with a plugin that does not answer took %v (request timeout %ds)", took, timeout)
	}
	t.Logf("RunPodSandbox with a plugin that does not answer: %v (request timeout %ds)", took.Round(time.Millisecond), timeout)
	select {
	case <-slow.closed:
	case <-time.After(10 * time.Second):
		t.Error("the late plugin was not disconnected")
	}

	// A plugin that dies mid-request: the create goes on without it.
	crashing := startNRIPlugin(t, d, "crashing", "30", nil)
	crashing.onCreate = crashing.crash
	after := runContainer(t, d, lateID, late, ctrConfig("after-crash", ref, "sleep", "3600"))
	select {
	case <-crashing.closed:
	case <-time.After(10 * time.Second):
		t.Error("the crashed plugin's connection is still open")
	}
	if got := strings.TrimSpace(execOut(t, d, after, "sh", "-c", "echo $NRI_ADJUSTED")); got != "yes" {
		t.Errorf("the plugin still connected did not adjust the container made after another crashed: %q", got)
	}
	if got := adj.eventsOf(lateID); !slices.Equal(got, []string{"RunPodSandbox"}) {
		t.Errorf("events of the late pod at the first plugin: %v", got)
	}
	for _, id := range []string{lateID, earlyID} {
		if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatal(err)
		}
		assertPodGone(t, d, id)
	}
	// The pod made before the plugin connected is told stopped and
	// removed too.
	if got := adj.eventsOf(earlyID); !slices.Equal(got, []string{"StopPodSandbox", "RemovePodSandbox"}) {
		t.Errorf("events of the pod made before the plugin connected: %v", got)
	}
}
