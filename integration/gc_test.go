package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/husk-runtime/husk/integration/testenv"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestImageGC checks image garbage collection: an image removed while a
// container of it exists keeps its layers until the container is removed;
// a daemon killed in the middle of a collection finishes it at its next
// start; and once every image and container is gone, the content and
// layers dirs hold only what they held at the first start (the built-in
// pause).
func TestImageGC(t *testing.T) {
	bb := busyboxRef(t)
	base, err := testenv.BuildBusybox(testenv.DefaultCacheDir())
	if err != nil {
		t.Fatal(err)
	}
	// Many files, so that deleting the layer takes long enough to kill
	// the daemon in the middle of it.
	files := make(map[string]testenv.File, 20000)
	for i := range 20000 {
		files[fmt.Sprintf("/many/%02d/f%05d", i%100, i)] = testenv.File{Content: []byte("x"), Mode: 0o644}
	}
	img, err := testenv.WithFiles(base, files)
	if err != nil {
		t.Fatal(err)
	}
	many := shared.registry.Addr + "/test/many:1"
	pctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := testenv.Push(pctx, img, many); err != nil {
		t.Fatal(err)
	}

	d := StartDaemon(t)
	ctx := ctxT(t, 5*time.Minute)
	layersDir, contentDir := filepath.Join(d.Root, "layers"), filepath.Join(d.Root, "content", "blobs", "sha256")
	pauseLayers, pauseBlobs := dirNames(t, layersDir), dirNames(t, contentDir)

	pull(t, d, bb)
	pull(t, d, many)

	podCfg := podConfig("gc")
	podID := runPod(t, d, podCfg)
	ctr := runContainer(t, d, podID, podCfg, ctrConfig("c", many, "sleep", "3600"))
	withMany := dirNames(t, layersDir)
	if _, err := d.Img.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: many}}); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, layersDir); !slices.Equal(got, withMany) {
		t.Fatalf("removing an image a container uses changed the layers: %v -> %v", withMany, got)
	}
	if out := execOut(t, d, ctr, "ls", "/many/07"); !strings.Contains(out, "f00007") {
		t.Fatalf("container lost its files: %q", out)
	}
	if _, err := d.RT.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: ctr}); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, layersDir); len(got) != len(withMany)-1 {
		t.Fatalf("after the container went, the removed image's own layer should go (busybox's stay): %v -> %v", withMany, got)
	}
	if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}

	// Kill the daemon while it deletes the big layer.
	pull(t, d, many)
	done := make(chan error, 1)
	go func() {
		_, err := d.Img.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: many}})
		done <- err
	}()
	killedMidway := false
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline) && !killedMidway; {
		if slices.ContainsFunc(dirNames(t, layersDir), func(n string) bool { return strings.HasPrefix(n, ".tmp-gc-") }) {
			d.Kill()
			killedMidway = true
			break
		}
		select {
		case err := <-done:
			t.Fatalf("RemoveImage finished (%v) before the test saw the collection at work", err)
		default:
		}
	}
	if !killedMidway {
		t.Fatal("never saw a layer being deleted")
	}
	<-done
	d.Start()
	if n := dirNames(t, layersDir); slices.ContainsFunc(n, func(s string) bool { return strings.HasPrefix(s, ".tmp-") }) {
		t.Errorf("half-deleted layer left after restart: %v", n)
	}
	list, err := d.Img.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range list.Images {
		if im.Pinned {
			continue
		}
		if _, err := d.Img.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: im.Id}}); err != nil {
			t.Fatal(err)
		}
	}
	// "empty" is the filler lower dir of single-layer read-only mounts
	// (the pause's), made on first use.
	if got := slices.DeleteFunc(dirNames(t, layersDir), func(s string) bool { return s == "empty" }); !slices.Equal(got, pauseLayers) {
		t.Errorf("layers dir holds %v, at first start %v", got, pauseLayers)
	}
	if got := dirNames(t, contentDir); !slices.Equal(got, pauseBlobs) {
		t.Errorf("content dir holds %v, at first start %v", got, pauseBlobs)
	}
	assertDaemonClean(t, d)
}

// dirNames lists a directory's entries, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
