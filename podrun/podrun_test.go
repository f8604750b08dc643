package podrun

// The runner and supervisor against a fake CRI runtime (fakeCRI): init
// containers in order, each to completion before the next; kubelet's
// restart back-off; the liveness probe's failure threshold. The fake's
// clock is the supervisor's, stepped by the test, so no test waits out a
// back-off.

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/husk-runtime/husk/kubepod"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeCRI is a runtime of one pod whose containers run until the test
// exits them, except those named in exitAtStart (init containers), which
// exit with that code when their status is first read after their start:
// a runner that did not wait for one would make the next before it ended.
type fakeCRI struct {
	mu          sync.Mutex
	clock       time.Time
	log         []string // "create NAME", "start NAME", "stop NAME", "remove NAME", "exec NAME"
	ctrs        map[string]*fakeCtr
	exitAtStart map[string]int32
	execExit    int32            // what ExecSync's command exits with
	execExits   map[string]int32 // by the command's first word, over execExit
}

type fakeCtr struct {
	name    string
	annot   map[string]string
	state   runtimeapi.ContainerState
	started int64
	ended   int64
	code    int32
}

func newFake() *fakeCRI {
	return &fakeCRI{clock: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), ctrs: map[string]*fakeCtr{}, exitAtStart: map[string]int32{}}
}

func (f *fakeCRI) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clock
}

func (f *fakeCRI) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clock = f.clock.Add(d)
}

func (f *fakeCRI) record(format string, args ...any) {
	f.log = append(f.log, fmt.Sprintf(format, args...))
}

func (f *fakeCRI) calls(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.log {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// exit ends the running attempt of container name with code.
func (f *fakeCRI) exit(name string, code int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.ctrs {
		if c.name == name && c.state == runtimeapi.ContainerState_CONTAINER_RUNNING {
			c.state, c.code, c.ended = runtimeapi.ContainerState_CONTAINER_EXITED, code, f.clock.UnixNano()
		}
	}
}

func (f *fakeCRI) RunPodSandbox(context.Context, *runtimeapi.RunPodSandboxRequest, ...grpc.CallOption) (*runtimeapi.RunPodSandboxResponse, error) {
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: "pod1"}, nil
}

func (f *fakeCRI) StopPodSandbox(context.Context, *runtimeapi.StopPodSandboxRequest, ...grpc.CallOption) (*runtimeapi.StopPodSandboxResponse, error) {
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (f *fakeCRI) RemovePodSandbox(context.Context, *runtimeapi.RemovePodSandboxRequest, ...grpc.CallOption) (*runtimeapi.RemovePodSandboxResponse, error) {
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

func (f *fakeCRI) PodSandboxStatus(context.Context, *runtimeapi.PodSandboxStatusRequest, ...grpc.CallOption) (*runtimeapi.PodSandboxStatusResponse, error) {
	return &runtimeapi.PodSandboxStatusResponse{Status: &runtimeapi.PodSandboxStatus{
		Id: "pod1", State: runtimeapi.PodSandboxState_SANDBOX_READY,
		Network: &runtimeapi.PodSandboxNetworkStatus{Ip: "10.0.0.2"},
	}}, nil
}

func (f *fakeCRI) ListPodSandbox(context.Context, *runtimeapi.ListPodSandboxRequest, ...grpc.CallOption) (*runtimeapi.ListPodSandboxResponse, error) {
	return &runtimeapi.ListPodSandboxResponse{}, nil
}

func (f *fakeCRI) CreateContainer(_ context.Context, in *runtimeapi.CreateContainerRequest, _ ...grpc.CallOption) (*runtimeapi.CreateContainerResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	md := in.GetConfig().GetMetadata()
	id := fmt.Sprintf("%s-%d", md.GetName(), md.GetAttempt())
	f.ctrs[id] = &fakeCtr{name: md.GetName(), annot: in.GetConfig().GetAnnotations(), state: runtimeapi.ContainerState_CONTAINER_CREATED}
	f.record("create %s", id)
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
}

func (f *fakeCRI) StartContainer(_ context.Context, in *runtimeapi.StartContainerRequest, _ ...grpc.CallOption) (*runtimeapi.StartContainerResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.ctrs[in.ContainerId]
	c.state, c.started = runtimeapi.ContainerState_CONTAINER_RUNNING, f.clock.UnixNano()
	f.record("start %s", in.ContainerId)
	return &runtimeapi.StartContainerResponse{}, nil
}

func (f *fakeCRI) StopContainer(_ context.Context, in *runtimeapi.StopContainerRequest, _ ...grpc.CallOption) (*runtimeapi.StopContainerResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.ctrs[in.ContainerId]; c != nil && c.state == runtimeapi.ContainerState_CONTAINER_RUNNING {
		c.state, c.code, c.ended = runtimeapi.ContainerState_CONTAINER_EXITED, 137, f.clock.UnixNano()
	}
	f.record("stop %s", in.ContainerId)
	return &runtimeapi.StopContainerResponse{}, nil
}

func (f *fakeCRI) RemoveContainer(_ context.Context, in *runtimeapi.RemoveContainerRequest, _ ...grpc.CallOption) (*runtimeapi.RemoveContainerResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.ctrs, in.ContainerId)
	f.record("remove %s", in.ContainerId)
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func (f *fakeCRI) ListContainers(context.Context, *runtimeapi.ListContainersRequest, ...grpc.CallOption) (*runtimeapi.ListContainersResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*runtimeapi.Container
	for id, c := range f.ctrs {
		out = append(out, &runtimeapi.Container{Id: id, PodSandboxId: "pod1", State: c.state, Metadata: &runtimeapi.ContainerMetadata{Name: c.name}, Annotations: c.annot})
	}
	return &runtimeapi.ListContainersResponse{Containers: out}, nil
}

func (f *fakeCRI) ContainerStatus(_ context.Context, in *runtimeapi.ContainerStatusRequest, _ ...grpc.CallOption) (*runtimeapi.ContainerStatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.ctrs[in.ContainerId]
	if c == nil {
		return nil, status.Errorf(codes.NotFound, "container %s not found", in.ContainerId)
	}
	if code, ok := f.exitAtStart[c.name]; ok && c.state == runtimeapi.ContainerState_CONTAINER_RUNNING {
		c.state, c.code, c.ended = runtimeapi.ContainerState_CONTAINER_EXITED, code, f.clock.UnixNano()
		f.record("exit %s", in.ContainerId)
	}
	return &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{
		Id: in.ContainerId, State: c.state, StartedAt: c.started, FinishedAt: c.ended, ExitCode: c.code,
		Metadata: &runtimeapi.ContainerMetadata{Name: c.name},
	}}, nil
}

func (f *fakeCRI) ExecSync(_ context.Context, in *runtimeapi.ExecSyncRequest, _ ...grpc.CallOption) (*runtimeapi.ExecSyncResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("exec %s %s", in.ContainerId, in.Cmd[0])
	code, ok := f.execExits[in.Cmd[0]]
	if !ok {
		code = f.execExit
	}
	return &runtimeapi.ExecSyncResponse{ExitCode: code}, nil
}

func (f *fakeCRI) ImageStatus(context.Context, *runtimeapi.ImageStatusRequest, ...grpc.CallOption) (*runtimeapi.ImageStatusResponse, error) {
	return &runtimeapi.ImageStatusResponse{Image: &runtimeapi.Image{Id: "sha256:img", Uid: &runtimeapi.Int64Value{Value: 1000}}}, nil
}

func (f *fakeCRI) PullImage(context.Context, *runtimeapi.PullImageRequest, ...grpc.CallOption) (*runtimeapi.PullImageResponse, error) {
	return &runtimeapi.PullImageResponse{ImageRef: "sha256:img"}, nil
}

// start plans pod and starts it on a fake.
func start(t *testing.T, f *fakeCRI, pod *corev1.Pod) (*Runner, *Pod, error) {
	t.Helper()
	dir := t.TempDir()
	var stderr bytes.Buffer
	r := &Runner{Runtime: f, Images: f, StateDir: dir, LogRoot: dir + "/logs", Stdout: &bytes.Buffer{}, Stderr: &stderr}
	plan, err := r.Plan(kubepod.Source{Pod: pod, Origin: "Pod/" + pod.Name}, &runtimeapi.DNSConfig{}, false)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Start(context.Background(), plan, "test", false)
	return r, p, err
}

// supervise starts pod on f and returns a supervisor of it on f's clock,
// with the state of its first app container for s.step.
func supervise(t *testing.T, f *fakeCRI, pod *corev1.Pod) (*Runner, *Pod, *Supervisor, []*supervised) {
	t.Helper()
	r, p, err := start(t, f, pod)
	if err != nil {
		t.Fatal(err)
	}
	s := r.NewSupervisor(p, "")
	s.now = f.now
	return r, p, s, []*supervised{{c: p.Plan.Containers[0], id: p.ids[p.Plan.Containers[0].Name], backoff: backoffInitial}}
}

func testPod(restart corev1.RestartPolicy, names ...string) *corev1.Pod {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}, Spec: corev1.PodSpec{RestartPolicy: restart}}
	for _, n := range names {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: n, Image: "busybox", ImagePullPolicy: corev1.PullIfNotPresent})
	}
	return pod
}

// Init containers run one at a time, in order, each to completion before
// the next is created; the app containers after them all.
func TestInitContainersInOrder(t *testing.T) {
	f := newFake()
	pod := testPod(corev1.RestartPolicyAlways, "app")
	for _, n := range []string{"init1", "init2"} {
		pod.Spec.InitContainers = append(pod.Spec.InitContainers, corev1.Container{Name: n, Image: "busybox"})
		f.exitAtStart[n] = 0
	}
	if _, _, err := start(t, f, pod); err != nil {
		t.Fatal(err)
	}
	want := []string{"create init1-0", "start init1-0", "exit init1-0", "create init2-0", "start init2-0", "exit init2-0", "create app-0", "start app-0"}
	var got []string
	for _, c := range f.log {
		if strings.HasPrefix(c, "create") || strings.HasPrefix(c, "start") || strings.HasPrefix(c, "exit") {
			got = append(got, c)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("calls %q, want %q", got, want)
	}
}

// An init container that fails stops the pod there (restartPolicy Never
// semantics): no later container is made, and the error names it.
func TestInitContainerFails(t *testing.T) {
	f := newFake()
	pod := testPod(corev1.RestartPolicyNever, "app")
	pod.Spec.InitContainers = []corev1.Container{{Name: "init1", Image: "busybox"}, {Name: "init2", Image: "busybox"}}
	f.exitAtStart["init1"] = 3
	f.exitAtStart["init2"] = 0
	_, _, err := start(t, f, pod)
	if err == nil || !strings.Contains(err.Error(), "init container init1") || !strings.Contains(err.Error(), "exit code 3") {
		t.Fatalf("Start: %v, want init1's failure with its exit code", err)
	}
	if got := f.calls("create"); !slices.Equal(got, []string{"create init1-0"}) {
		t.Errorf("created %q after init1 failed, want init1 only", got)
	}
}

// kubelet's back-off: 10 s after the first exit, doubled per restart up
// to 5 minutes, back to 10 s after a run of 10 minutes.
func TestRestartBackoff(t *testing.T) {
	f := newFake()
	_, _, s, states := supervise(t, f, testPod(corev1.RestartPolicyAlways, "app"))
	ctx := context.Background()
	step := func() {
		t.Helper()
		if _, err := s.step(ctx, states); err != nil {
			t.Fatal(err)
		}
	}
	// waitsFor exits the app and checks that it is restarted after d, not
	// before.
	waitsFor := func(run, d time.Duration) {
		t.Helper()
		f.advance(run)
		f.exit("app", 1)
		n := len(f.calls("start"))
		step()
		f.advance(d - time.Second)
		step()
		if got := len(f.calls("start")); got != n {
			t.Fatalf("restarted %s after the exit, before its back-off of %s", d-time.Second, d)
		}
		f.advance(time.Second)
		step()
		if got := len(f.calls("start")); got != n+1 {
			t.Fatalf("not restarted %s after the exit (back-off %s)", d, d)
		}
	}
	for _, d := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute} {
		waitsFor(time.Second, d)
	}
	waitsFor(10*time.Minute, 10*time.Second) // a long run resets it
	if got := f.calls("start"); got[len(got)-1] != "start app-8" {
		t.Errorf("last start %q, want the 8th restart", got[len(got)-1])
	}
	// The attempt before the current one is kept for logs --previous, the
	// older ones removed.
	if got := f.calls("remove"); len(got) != 7 || got[0] != "remove app-0" {
		t.Errorf("removed %q, want app-0 to app-6", got)
	}
}

// A liveness probe stops its container after FailureThreshold failures in
// a row, no sooner; a success resets the count.
func TestLivenessThreshold(t *testing.T) {
	f := newFake()
	pod := testPod(corev1.RestartPolicyAlways, "app")
	pod.Spec.Containers[0].LivenessProbe = &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"check"}}},
		PeriodSeconds:    5,
		FailureThreshold: 3,
	}
	_, _, s, states := supervise(t, f, pod)
	probe := func() {
		t.Helper()
		f.advance(5 * time.Second)
		if _, err := s.step(context.Background(), states); err != nil {
			t.Fatal(err)
		}
	}
	f.execExit = 1
	probe()
	probe()
	f.execExit = 0
	probe() // resets the count
	f.execExit = 1
	probe()
	probe()
	if got := f.calls("stop"); len(got) != 0 {
		t.Fatalf("stopped after 2 failures in a row: %q", got)
	}
	if n := len(f.calls("exec")); n != 5 {
		t.Errorf("%d probes ran in five periods, want 5", n)
	}
	probe()
	// The stop runs beside the supervisor's loop.
	deadline := time.Now().Add(5 * time.Second)
	for len(f.calls("stop")) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := f.calls("stop"); !slices.Equal(got, []string{"stop app-0"}) {
		t.Errorf("after 3 failures in a row: stops %q, want app-0 once", got)
	}
}
