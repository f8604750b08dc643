package integration

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/husk-runtime/husk/integration/testenv"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// toZstd returns img as an OCI image whose layers are zstd-compressed
// (application/vnd.oci.image.layer.v1.tar+zstd), same files, same config.
func toZstd(t testing.TB, img v1.Image) v1.Image {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var zl []v1.Layer
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		z, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		}, tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd), tarball.WithCompressedCaching)
		if err != nil {
			t.Fatal(err)
		}
		zl = append(zl, z)
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	out, err := mutate.AppendLayers(base, zl...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if out, err = mutate.ConfigFile(out, cf); err != nil {
		t.Fatal(err)
	}
	// What the test is about: every layer is zstd, and says so.
	m, err := out.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range m.Layers {
		rc, err := zl[i].Compressed()
		if err != nil {
			t.Fatal(err)
		}
		head := make([]byte, 4)
		_, err = io.ReadFull(rc, head)
		rc.Close()
		if l.MediaType != types.OCILayerZStd || err != nil || !bytes.Equal(head, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
			t.Fatalf("layer %d: media type %s, blob starts %x (%v); want zstd", i, l.MediaType, head, err)
		}
	}
	return out
}

// An image whose layers are zstd-compressed, in the shared docker-registry:
// the daemon pulls it and runs a container from it, which reads a file of
// the image and prints it.
func TestRegistryZstd(t *testing.T) {
	requireRoot(t)
	busyboxRef(t) // starts the shared registry
	img, err := testenv.WithFile(busyboxImage(t), "/etc/zstd-check", []byte("unpacked-from-zstd\n"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	zimg := toZstd(t, img)
	ref := shared.registry.Addr + "/test/busybox-zstd:1"
	pctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := testenv.Push(pctx, zimg, ref); err != nil {
		t.Fatal(err)
	}

	d := StartDaemon(t)
	pull(t, d, ref)
	pod := podConfig("zstd")
	pod.LogDirectory = filepath.Join(d.Dir, "logs")
	podID := runPod(t, d, pod)
	c := runContainer(t, d, podID, pod, ctrConfig("reader", ref, "sh", "-c", "echo zstd-says: $(cat /etc/zstd-check)"))

	ctx := ctxT(t, time.Minute)
	var st *runtimeapi.ContainerStatus
	waitFor(t, 30*time.Second, "the container to exit", func() bool {
		resp, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c})
		if err != nil {
			t.Fatalf("ContainerStatus: %v", err)
		}
		st = resp.Status
		return st.State == runtimeapi.ContainerState_CONTAINER_EXITED
	})
	log, err := os.ReadFile(filepath.Join(pod.LogDirectory, "reader.log"))
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitCode != 0 || !strings.Contains(string(log), "stdout F zstd-says: unpacked-from-zstd") {
		t.Errorf("container of the zstd image: exit %d, log:\n%s", st.ExitCode, log)
	}
	if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, d, podID)
	assertDaemonClean(t, d)
}
