package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/husk-runtime/husk/integration/testenv"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestImageVolume mounts an image's contents into a container (Kubernetes
// image volumes): read-only, a sub path picked inside it, and nothing left
// mounted after removal.
func TestImageVolume(t *testing.T) {
	ref := busyboxRef(t)
	base, err := testenv.BuildBusybox(testenv.DefaultCacheDir())
	if err != nil {
		t.Fatal(err)
	}
	data, err := testenv.WithFile(base, "/data/hello.txt", []byte("from-the-image\n"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	volRef := shared.registry.Addr + "/test/volume:1"
	pctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := testenv.Push(pctx, data, volRef); err != nil {
		t.Fatal(err)
	}
	d := StartDaemon(t)
	pull(t, d, ref)
	volID := pull(t, d, volRef)
	ctx := ctxT(t, time.Minute)
	pod := podConfig("imagevol")
	podID := runPod(t, d, pod)

	cc := ctrConfig("reader", ref, "sleep", "3600")
	cc.Mounts = []*runtimeapi.Mount{
		{ContainerPath: "/vol", Image: &runtimeapi.ImageSpec{Image: volRef}, Readonly: true},
		{ContainerPath: "/sub", Image: &runtimeapi.ImageSpec{Image: volRef}, ImageSubPath: "data", Readonly: true},
	}
	c := runContainer(t, d, podID, pod, cc)
	// ContainerStatus names the image each volume resolved to
	// (ImageSpec.image_ref, KEP-5365), the id PullImage returned.
	st, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Status.Mounts {
		if m.GetImage().GetImageRef() != volID {
			t.Errorf("mount %s: image_ref %q, want %q", m.ContainerPath, m.GetImage().GetImageRef(), volID)
		}
	}
	if got := strings.TrimSpace(execOut(t, d, c, "cat", "/vol/data/hello.txt")); got != "from-the-image" {
		t.Errorf("/vol/data/hello.txt: %q", got)
	}
	if got := strings.TrimSpace(execOut(t, d, c, "cat", "/sub/hello.txt")); got != "from-the-image" {
		t.Errorf("/sub/hello.txt (sub path): %q", got)
	}
	ex, err := d.RT.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: c, Cmd: []string{"sh", "-c", "echo x > /vol/data/new"}, Timeout: 10})
	if err != nil || ex.ExitCode == 0 {
		t.Errorf("write into an image volume: %v exit %d, want it refused", err, ex.GetExitCode())
	}
	bad := ctrConfig("bad", ref, "true")
	bad.Mounts = []*runtimeapi.Mount{{ContainerPath: "/v", Image: &runtimeapi.ImageSpec{Image: shared.registry.Addr + "/test/not-pulled:1"}, Readonly: true}}
	if _, err := d.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: bad, SandboxConfig: pod}); err == nil {
		t.Error("image volume of an image not present accepted")
	}
	// An image volume is read-only: a writable one is refused up front.
	rw := ctrConfig("rw", ref, "true")
	rw.Mounts = []*runtimeapi.Mount{{ContainerPath: "/v", Image: &runtimeapi.ImageSpec{Image: volRef}}}
	if _, err := d.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: rw, SandboxConfig: pod}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "image volume /v: readonly must be true") {
		t.Errorf("writable image volume: want InvalidArgument naming it, got %v", err)
	}
	if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, d, podID)
	assertDaemonClean(t, d)
}
