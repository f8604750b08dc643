package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/husk-runtime/husk/integration/testenv"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestPodWithNoRegistry pulls an app image, takes the registry away, and
// runs a pod: the infra container is husk's built-in pause, so nothing
// else is fetched.
func TestPodWithNoRegistry(t *testing.T) {
	requireRoot(t)
	reg := testenv.StartRegistry(t)
	img, err := testenv.BuildBusybox(testenv.DefaultCacheDir())
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Addr + "/offline/busybox:1"
	pctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := testenv.Push(pctx, img, ref); err != nil {
		t.Fatal(err)
	}
	d := StartDaemon(t)
	pull(t, d, ref)
	if err := reg.Stop(); err != nil {
		t.Fatalf("stop registry: %v", err)
	}
	ctx := ctxT(t, time.Minute)
	// The registry is really gone.
	if _, err := d.Img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err == nil {
		t.Fatal("pull succeeded with the registry stopped")
	}

	pod := podConfig("offline")
	podID := runPod(t, d, pod)
	c := runContainer(t, d, podID, pod, ctrConfig("app", ref, "sleep", "3600"))
	ex, err := d.RT.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: c, Cmd: []string{"hostname"}, Timeout: 10})
	if err != nil || strings.TrimSpace(string(ex.Stdout)) != "offline" {
		t.Fatalf("exec hostname: %v %q", err, ex.GetStdout())
	}
	imgs, err := d.Img.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var pinned []string
	for _, i := range imgs.Images {
		if i.Pinned {
			pinned = append(pinned, i.RepoTags...)
		}
	}
	if len(pinned) != 1 || !strings.HasPrefix(pinned[0], "localhost/husk/pause:") {
		t.Fatalf("pinned images: %v, want the built-in pause", pinned)
	}
	if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, d, podID)
	assertDaemonClean(t, d)
}
