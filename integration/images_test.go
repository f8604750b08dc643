package integration

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/husk-runtime/husk/integration/testenv"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The busybox image and a registry serving it are shared by the tests of
// this binary: building the image from Debian's busybox takes a while.
var (
	shared struct {
		once     sync.Once
		err      error
		registry *testenv.Registry
		busybox  string // reference in the local registry
		dir      string
	}
)

// busyboxRef returns the reference of the test busybox image in a registry
// on 127.0.0.1, built from Debian's dynamically linked busybox.
func busyboxRef(t testing.TB) string {
	t.Helper()
	requireRoot(t)
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "husk-it-reg-")
		if shared.err != nil {
			return
		}
		shared.registry, shared.err = testenv.StartRegistryProcess(shared.dir)
		if shared.err != nil {
			return
		}
		var img v1.Image
		img, shared.err = testenv.BuildBusybox(testenv.DefaultCacheDir())
		if shared.err != nil {
			return
		}
		shared.busybox = shared.registry.Addr + "/test/busybox:1"
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.err = testenv.Push(ctx, img, shared.busybox)
	})
	if shared.err != nil {
		t.Fatalf("test registry with busybox: %v", shared.err)
	}
	return shared.busybox
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.registry != nil {
		_ = shared.registry.Stop()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

func pull(t testing.TB, d *Daemon, ref string) string {
	t.Helper()
	resp, err := d.Img.PullImage(ctxT(t, 2*time.Minute), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		t.Fatalf("PullImage %s: %v", ref, err)
	}
	return resp.ImageRef
}

// podConfig is a minimal pod sandbox config with a unique uid.
func podConfig(name string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "husk-test", Uid: fmt.Sprintf("%s-%d", name, time.Now().UnixNano())},
		Hostname:     name,
		LogDirectory: "",
		Linux:        &runtimeapi.LinuxPodSandboxConfig{},
	}
}

func ctrConfig(name, image string, cmd ...string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: image},
		Command:  cmd,
		LogPath:  name + ".log",
		Linux:    &runtimeapi.LinuxContainerConfig{},
	}
}

// runContainer creates and starts a container.
func runContainer(t testing.TB, d *Daemon, podID string, pod *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	cr, err := d.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pod})
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", cfg.Metadata.Name, err)
	}
	if _, err := d.RT.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		t.Fatalf("StartContainer %s: %v", cfg.Metadata.Name, err)
	}
	return cr.ContainerId
}

func runPod(t testing.TB, d *Daemon, cfg *runtimeapi.PodSandboxConfig) string {
	t.Helper()
	resp, err := d.RT.RunPodSandbox(ctxT(t, time.Minute), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox %s: %v", cfg.Metadata.Name, err)
	}
	return resp.PodSandboxId
}
