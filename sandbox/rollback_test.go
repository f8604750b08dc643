package sandbox

// The rollback tests (house rules 2 to 4): RunPodSandbox, CreateContainer
// and RemovePodSandbox driven through fakes of the package's three
// boundaries (Images, Network, Shims), with each step failed in turn.
// After a failed make nothing may stay: no reserved name, no record in
// memory or on disk, no shim socket, netns or cgroup, and the undo steps
// that ran ran in the reverse order of what they undo. After a failed
// removal the pod stays listed, so kubelet's retry can finish the job, and
// that retry leaves nothing.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/husk-runtime/husk/atomicfile"
	"github.com/husk-runtime/husk/hostcgroup"
	"github.com/husk-runtime/husk/image"
	"github.com/husk-runtime/husk/network"
	"github.com/husk-runtime/husk/shim"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var errInjected = errors.New("injected failure")

// world is one manager over fakes that log every call they get, as
// "<Call> <what>" (what: pod, ctr, infra, or the image ref), and fail the
// calls named in fail.
type world struct {
	t      testing.TB
	m      *Manager
	root   string
	layout *hostcgroup.Layout

	mu    sync.Mutex
	log   []string
	fail  map[string]bool
	shims map[string]*fakeShim // by socket
}

func newWorld(t testing.TB) *world {
	t.Helper()
	layout, _ := fakeLayout(t, "-", "cpu", "memory", "pids")
	w := &world{t: t, root: t.TempDir(), layout: layout, fail: map[string]bool{}, shims: map[string]*fakeShim{}}
	m, err := New(context.Background(), Config{
		Root: filepath.Join(w.root, "root"), State: filepath.Join(w.root, "state"),
		SandboxImage: "pause", Cgroups: layout, Shims: (*fakeShims)(w),
		// The fallback delete of a container whose shim is gone (true(1)
		// takes husk-oci's arguments and succeeds, as its delete of a
		// container that is not there does).
		OCIPath: truePath(t),
	}, (*fakeImages)(w), (*fakeNetwork)(w), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	w.m = m
	return w
}

func truePath(t testing.TB) string {
	p, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// call logs a call and says whether it is to fail.
func (w *world) call(format string, args ...any) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := fmt.Sprintf(format, args...)
	w.log = append(w.log, c)
	if w.fail[c] {
		return fmt.Errorf("%s: %w", c, errInjected)
	}
	return nil
}

// shimCall is call for the fake shim, whose failures come as the real
// shim's do: a *shim.Error (an error of another type is a broken
// connection, which the manager answers differently).
func (w *world) shimCall(format string, args ...any) error {
	if err := w.call(format, args...); err != nil {
		return &shim.Error{Code: shim.CodeInternal, Message: err.Error()}
	}
	return nil
}

// injected says whether err is, or tells of, an injected failure.
func injected(err error) bool {
	return err != nil && strings.Contains(err.Error(), errInjected.Error())
}

func (w *world) failing(calls ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fail = map[string]bool{}
	for _, c := range calls {
		w.fail[c] = true
	}
}

// calls is the log since the last reset, keeping only the calls named by
// keep's prefixes.
func (w *world) calls(keep ...string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, c := range w.log {
		for _, k := range keep {
			if strings.HasPrefix(c, k) {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

func (w *world) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.log = nil
}

// what names a mount dir or a container id for the log.
func (w *world) what(dirOrID string) string {
	switch {
	case strings.Contains(dirOrID, "/containers/"):
		return "ctr"
	case strings.Contains(dirOrID, "/pods/"):
		return "pod"
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.shims {
		if s.podID == dirOrID {
			return "infra"
		}
	}
	return "ctr"
}

type fakeImages world

func (f *fakeImages) Resolve(ref string) (image.Image, error) {
	if err := (*world)(f).call("Resolve %s", ref); err != nil {
		return image.Image{}, fmt.Errorf("%w: %w", err, image.ErrNotFound)
	}
	return image.Image{ID: "sha256:" + strings.Repeat("ab", 32), RepoTags: []string{"docker.io/library/" + ref + ":latest"}, Pinned: ref == "pause"}, nil
}

func (f *fakeImages) Mount(_ image.Image, dir string, _ bool, _ *image.IDMap) (string, error) {
	if err := (*world)(f).call("Mount %s", (*world)(f).what(dir)); err != nil {
		return "", err
	}
	rootfs := filepath.Join(dir, "rootfs")
	return rootfs, os.MkdirAll(rootfs, 0o755)
}

func (f *fakeImages) Unmount(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "rootfs")); err != nil {
		return nil // nothing mounted: the real Unmount does nothing either
	}
	return (*world)(f).call("Unmount %s", (*world)(f).what(dir))
}

func (f *fakeImages) Collect() error { return nil }

type fakeNetwork world

func (f *fakeNetwork) NetnsPath(podID string) string {
	return filepath.Join((*world)(f).root, "netns", podID)
}

func (f *fakeNetwork) CreateNetns(podID string) (string, error) {
	if err := (*world)(f).call("CreateNetns pod"); err != nil {
		return "", err
	}
	p := f.NetnsPath(podID)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	return p, os.WriteFile(p, nil, 0o644)
}

func (f *fakeNetwork) AdoptNetns(podID, _ string) (string, error) { return f.CreateNetns(podID) }

func (f *fakeNetwork) RemoveNetns(path string) error {
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	if err := (*world)(f).call("RemoveNetns pod"); err != nil {
		return err
	}
	return os.Remove(path)
}

func (f *fakeNetwork) Setup(context.Context, network.PodNetwork) (network.Result, error) {
	if err := (*world)(f).call("Setup pod"); err != nil {
		return network.Result{}, err
	}
	return network.Result{IPs: []string{"10.88.0.2"}}, nil
}

func (f *fakeNetwork) Teardown(context.Context, network.PodNetwork) error {
	return (*world)(f).call("Teardown pod")
}

type fakeShims world

func (f *fakeShims) Launch(_ context.Context, cfg shim.LaunchConfig) (Shim, int, error) {
	w := (*world)(f)
	if err := w.shimCall("Launch pod"); err != nil {
		return nil, 0, err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Socket), 0o755); err != nil {
		return nil, 0, err
	}
	if err := os.WriteFile(cfg.Socket, nil, 0o600); err != nil {
		return nil, 0, err
	}
	s := &fakeShim{w: w, podID: cfg.PodID, socket: cfg.Socket, ctrs: map[string]*fakeCtr{}}
	w.mu.Lock()
	w.shims[cfg.Socket] = s
	w.mu.Unlock()
	return s, 0, nil
}

func (f *fakeShims) Dial(socket string) Shim {
	w := (*world)(f)
	w.mu.Lock()
	defer w.mu.Unlock()
	if s := w.shims[socket]; s != nil {
		return s
	}
	return &fakeShim{w: w, gone: true}
}

// fakeShim models what the manager relies on: containers created, running
// and exited, an exit file written on exit, Wait returning at exit.
type fakeShim struct {
	w      *world
	podID  string
	socket string

	mu        sync.Mutex
	gone      bool
	ctrs      map[string]*fakeCtr
	failWaits int // Waits that fail at once, as a refused dial does
}

type fakeCtr struct {
	status   string
	exitFile string
	exited   chan struct{}
	exit     *shim.ExitStatus // what Kill wrote to exitFile
}

var errConnRefused = errors.New("connect: connection refused")

func (s *fakeShim) get(id string) (*fakeCtr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return nil, errConnRefused
	}
	c := s.ctrs[id]
	if c == nil {
		return nil, &shim.Error{Code: shim.CodeNotFound, Message: "container " + id + " not found"}
	}
	return c, nil
}

// make is Run and Create: what libcontainer does first is make the
// container's cgroup, so the fake does too, failing or not.
func (s *fakeShim) make(call, id, bundle, exitFile, status string) (int, error) {
	var spec specs.Spec
	if err := atomicfile.ReadJSON(filepath.Join(bundle, "config.json"), &spec); err != nil {
		return 0, err
	}
	for _, h := range s.w.layout.Hierarchies() {
		if err := os.MkdirAll(filepath.Join(h, spec.Linux.CgroupsPath), 0o755); err != nil {
			return 0, err
		}
	}
	if err := s.w.shimCall("%s %s", call, s.w.what(id)); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctrs[id] = &fakeCtr{status: status, exitFile: exitFile, exited: make(chan struct{})}
	return 4242, nil
}

func (s *fakeShim) Version(context.Context) error {
	if _, err := s.get(""); errors.Is(err, errConnRefused) {
		return err
	}
	return nil
}

func (s *fakeShim) State(context.Context) ([]shim.Container, error) {
	if err := s.Version(context.Background()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []shim.Container
	for id, c := range s.ctrs {
		out = append(out, shim.Container{ID: id, Status: c.status})
	}
	return out, nil
}

func (s *fakeShim) Run(_ context.Context, id, bundle, _, exitFile string) (int, error) {
	return s.make("Run", id, bundle, exitFile, shim.StatusRunning)
}

func (s *fakeShim) CreateWithStdin(_ context.Context, id, bundle, _, exitFile string, _ bool) (int, error) {
	return s.make("Create", id, bundle, exitFile, shim.StatusCreated)
}

func (s *fakeShim) Start(_ context.Context, id string) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	if err := s.w.shimCall("Start %s", s.w.what(id)); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c.status = shim.StatusRunning
	return nil
}

func (s *fakeShim) Kill(_ context.Context, id string, sig int) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	if err := s.w.shimCall("Kill %s", s.w.what(id)); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.status != shim.StatusExited {
		c.status = shim.StatusExited
		c.exit = &shim.ExitStatus{Code: 128 + sig, FinishedAt: time.Now().UTC()}
		if err := atomicfile.WriteJSON(c.exitFile, c.exit); err != nil {
			return err
		}
		close(c.exited)
	}
	return nil
}

func (s *fakeShim) Wait(ctx context.Context, id string, timeout time.Duration) (*shim.ExitStatus, bool, error) {
	c, err := s.get(id)
	if err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	if s.failWaits > 0 {
		s.failWaits--
		s.mu.Unlock()
		return nil, false, errConnRefused
	}
	s.mu.Unlock()
	var expire <-chan time.Time
	if timeout > 0 {
		expire = time.After(timeout)
	}
	select {
	case <-c.exited:
		s.mu.Lock()
		defer s.mu.Unlock()
		if c.exit == nil { // ended by the shim's shutdown
			return &shim.ExitStatus{}, true, nil
		}
		return c.exit, true, nil
	case <-expire:
		return nil, false, nil
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

func (s *fakeShim) Delete(_ context.Context, id string) error {
	if err := s.Version(context.Background()); err != nil {
		return err
	}
	if err := s.w.shimCall("Delete %s", s.w.what(id)); err != nil {
		return err
	}
	if _, err := s.get(id); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.ctrs, id)
	return nil
}

func (s *fakeShim) Shutdown(context.Context) error {
	if err := s.Version(context.Background()); err != nil {
		return err
	}
	if err := s.w.shimCall("Shutdown pod"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gone = true
	for _, c := range s.ctrs {
		if c.status != shim.StatusExited {
			close(c.exited) // the shim's waits end with it
		}
	}
	return nil
}

func (s *fakeShim) Exec(context.Context, string, *specs.Process, time.Duration) (*shim.ExecResult, error) {
	return nil, errors.New("fake shim: no exec")
}

func (s *fakeShim) ExecStream(context.Context, string, *specs.Process, bool) (*shim.Stream, error) {
	return nil, errors.New("fake shim: no exec")
}

func (s *fakeShim) Attach(context.Context, string, bool, bool, bool) (*shim.Stream, error) {
	return nil, errors.New("fake shim: no attach")
}

func (s *fakeShim) Update(context.Context, string, *specs.LinuxResources) error { return nil }
func (s *fakeShim) ReopenLog(context.Context, string) error                     { return nil }

func podConfig(name string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: name + "-uid"},
		// The node's /dev/shm: the pod's own would be a real tmpfs mount.
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Ipc: runtimeapi.NamespaceMode_NODE},
		}},
	}
}

func ctrConfig(name string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Command:  []string{"sleep", "1000"},
	}
}

// assertEmpty checks that the manager holds nothing and left nothing on
// disk: no name, no record, no pod dir, no shim socket, no netns file, no
// cgroup, and no fake shim with a container or still up.
func (w *world) assertEmpty() {
	w.t.Helper()
	w.m.mu.RLock()
	names, pods, ctrs := len(w.m.names), len(w.m.pods), len(w.m.ctrs)
	w.m.mu.RUnlock()
	if names+pods+ctrs != 0 {
		w.t.Errorf("manager still holds %d names, %d pods, %d containers", names, pods, ctrs)
	}
	for _, dir := range []string{
		filepath.Join(w.root, "root", "pods"), filepath.Join(w.root, "state", "s"), filepath.Join(w.root, "netns"),
	} {
		if ents, _ := os.ReadDir(dir); len(ents) > 0 {
			w.t.Errorf("%s still holds %s", dir, ents[0].Name())
		}
	}
	for _, h := range w.layout.Hierarchies() {
		if ents, _ := os.ReadDir(filepath.Join(h, "husk")); len(ents) > 0 {
			w.t.Errorf("cgroup %s/husk/%s left", h, ents[0].Name())
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.shims {
		if !s.gone || len(s.ctrs) > 0 {
			w.t.Errorf("shim of pod %s left (up: %v, containers: %d)", s.podID, !s.gone, len(s.ctrs))
		}
	}
}

// undoCalls are the calls only a rollback or a removal makes.
var undoCalls = []string{"Delete", "Unmount", "Shutdown", "Teardown", "RemoveNetns"}

func TestRunPodSandboxRollback(t *testing.T) {
	for _, tc := range []struct {
		fail []string
		undo []string // in the order they must run
	}{
		{fail: []string{"Resolve pause"}},
		// The shim starts beside the netns, files and rootfs, so it is
		// up (and stopped last) whatever of those fails.
		{fail: []string{"CreateNetns pod"}, undo: []string{"Shutdown pod"}},
		{fail: []string{"Launch pod"}, undo: []string{"Unmount pod", "Teardown pod", "RemoveNetns pod"}},
		{fail: []string{"Mount pod"}, undo: []string{"Teardown pod", "RemoveNetns pod", "Shutdown pod"}},
		{fail: []string{"Run infra"}, undo: []string{"Delete infra", "Unmount pod", "Teardown pod", "RemoveNetns pod", "Shutdown pod"}},
		// CNI ADD failed: no DEL, the rest undone.
		{fail: []string{"Setup pod"}, undo: []string{"Delete infra", "Unmount pod", "RemoveNetns pod", "Shutdown pod"}},
	} {
		t.Run(strings.Join(tc.fail, "+"), func(t *testing.T) {
			w := newWorld(t)
			w.failing(tc.fail...)
			_, err := w.m.RunPodSandbox(context.Background(), podConfig("web"), "")
			if !injected(err) {
				t.Fatalf("RunPodSandbox: %v, want the injected failure", err)
			}
			if got := w.calls(undoCalls...); !slices.Equal(got, tc.undo) {
				t.Errorf("undo ran %q, want %q", got, tc.undo)
			}
			w.assertEmpty()
			// The name is free: the same pod can be made now.
			w.failing()
			if _, err := w.m.RunPodSandbox(context.Background(), podConfig("web"), ""); err != nil {
				t.Fatalf("RunPodSandbox after the failed one: %v", err)
			}
		})
	}
}

// A rollback that cannot delete the infra keeps the pod, NotReady, for
// kubelet's garbage collection; its removal then leaves nothing.
func TestRunPodSandboxRollbackLeftover(t *testing.T) {
	w := newWorld(t)
	w.failing("Run infra", "Delete infra")
	if _, err := w.m.RunPodSandbox(context.Background(), podConfig("web"), ""); !injected(err) {
		t.Fatalf("RunPodSandbox: %v, want the injected failure", err)
	}
	pods := w.m.ListPodSandboxes(context.Background())
	if len(pods) != 1 || pods[0].Ready {
		t.Fatalf("after a rollback that could not delete the infra: %d pods listed (%+v), want one NotReady", len(pods), pods)
	}
	w.failing()
	if err := w.m.RemovePodSandbox(context.Background(), pods[0].ID); err != nil {
		t.Fatal(err)
	}
	w.assertEmpty()
}

func TestCreateContainerRollback(t *testing.T) {
	for _, tc := range []struct {
		fail []string
		undo []string
	}{
		{fail: []string{"Resolve busybox"}},
		{fail: []string{"Mount ctr"}},
		{fail: []string{"Create ctr"}, undo: []string{"Delete ctr", "Unmount ctr"}},
	} {
		t.Run(strings.Join(tc.fail, "+"), func(t *testing.T) {
			w := newWorld(t)
			pod, err := w.m.RunPodSandbox(context.Background(), podConfig("web"), "")
			if err != nil {
				t.Fatal(err)
			}
			w.reset()
			w.failing(tc.fail...)
			if _, err := w.m.CreateContainer(context.Background(), pod, ctrConfig("app"), podConfig("web")); !injected(err) {
				t.Fatalf("CreateContainer: %v, want the injected failure", err)
			}
			if got := w.calls(undoCalls...); !slices.Equal(got, tc.undo) {
				t.Errorf("undo ran %q, want %q", got, tc.undo)
			}
			w.m.mu.RLock()
			names, ctrs := len(w.m.names), len(w.m.ctrs)
			w.m.mu.RUnlock()
			if names != 1 || ctrs != 0 {
				t.Errorf("after the failed create: %d names (want the pod's only), %d containers", names, ctrs)
			}
			if ents, _ := os.ReadDir(filepath.Join(w.root, "root", "pods", pod, "containers")); len(ents) > 0 {
				t.Errorf("container dir %s left", ents[0].Name())
			}
			w.failing()
			if _, err := w.m.CreateContainer(context.Background(), pod, ctrConfig("app"), podConfig("web")); err != nil {
				t.Fatalf("CreateContainer after the failed one: %v", err)
			}
			if err := w.m.RemovePodSandbox(context.Background(), pod); err != nil {
				t.Fatal(err)
			}
			w.assertEmpty()
		})
	}
}

// A create whose rollback cannot delete what the runtime made keeps the
// container's dir, out of every list and with its name free; the pod's
// removal sweeps it.
func TestCreateContainerRollbackLeftover(t *testing.T) {
	w := newWorld(t)
	pod, err := w.m.RunPodSandbox(context.Background(), podConfig("web"), "")
	if err != nil {
		t.Fatal(err)
	}
	w.failing("Create ctr", "Delete ctr")
	if _, err := w.m.CreateContainer(context.Background(), pod, ctrConfig("app"), podConfig("web")); !injected(err) {
		t.Fatalf("CreateContainer: %v, want the injected failure", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(w.root, "root", "pods", pod, "containers")); len(ents) != 1 {
		t.Errorf("container dirs after a rollback that could not delete: %d, want the one kept", len(ents))
	}
	if n := len(w.m.ListContainers(context.Background())); n != 0 {
		t.Errorf("%d containers listed, want none", n)
	}
	w.failing()
	if err := w.m.RemovePodSandbox(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	w.assertEmpty()
}

// Each step of a removal failed in turn: the removal fails, the pod stays
// listed, and the retry removes everything.
func TestRemovePodSandboxFailedStep(t *testing.T) {
	for _, step := range []string{
		"Kill ctr", "Kill infra", "Teardown pod", "Delete ctr", "Unmount ctr", "Delete infra", "Shutdown pod", "Unmount pod", "RemoveNetns pod",
	} {
		t.Run(step, func(t *testing.T) {
			w := newWorld(t)
			ctx := context.Background()
			pod, err := w.m.RunPodSandbox(ctx, podConfig("web"), "")
			if err != nil {
				t.Fatal(err)
			}
			ctr, err := w.m.CreateContainer(ctx, pod, ctrConfig("app"), podConfig("web"))
			if err != nil {
				t.Fatal(err)
			}
			if err := w.m.StartContainer(ctx, ctr); err != nil {
				t.Fatal(err)
			}
			w.failing(step)
			if err := w.m.RemovePodSandbox(ctx, pod); !injected(err) {
				t.Fatalf("RemovePodSandbox: %v, want the injected failure", err)
			}
			if n := len(w.m.ListPodSandboxes(context.Background())); n != 1 {
				t.Fatalf("after the failed removal %d pods listed, want the pod still", n)
			}
			w.failing()
			if err := w.m.RemovePodSandbox(ctx, pod); err != nil {
				t.Fatalf("retried RemovePodSandbox: %v", err)
			}
			w.assertEmpty()
		})
	}
}

// A host-IPC pod's /dev/shm is the node's: a rollback once detached it
// (its undo unmounted files.Shm whatever it was). The test mounts a tmpfs
// on /dev/shm in a mount namespace of its own (this thread's), fails a
// host-IPC pod's start after the shm step, and checks the mount is still
// there.
func TestRollbackKeepsNodeShm(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a mount namespace and a tmpfs")
	}
	w := newWorld(t)
	done := make(chan error, 1)
	go func() {
		// The thread stays locked and ends with the goroutine, taking its
		// namespace with it: nothing here touches the node's mounts.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			done <- err
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			done <- err
			return
		}
		if err := unix.Mount("tmpfs", "/dev/shm", "tmpfs", 0, ""); err != nil {
			done <- err
			return
		}
		w.failing("Launch pod")
		if _, err := w.m.RunPodSandbox(context.Background(), podConfig("web"), ""); !injected(err) {
			done <- fmt.Errorf("RunPodSandbox: %v, want the injected failure", err)
			return
		}
		if m, err := mountinfo.Mounted("/dev/shm"); err != nil || !m {
			done <- fmt.Errorf("the node's /dev/shm was unmounted by the rollback (mounted %v, %v)", m, err)
			return
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
