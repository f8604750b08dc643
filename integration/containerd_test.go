package integration

// containerd as the comparison runtime of the tests and benchmarks
// (testenv.Containerd, which the node e2e runner starts too): the same
// registry and CNI plugins as husk's Daemon, and nothing of it is left
// after the test.

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/husk-runtime/husk/integration/testenv"
	"github.com/husk-runtime/husk/pause"
)

// Containerd is testenv's isolated containerd for a test: started with
// the test registry's images and cleaned up when the test ends.
type Containerd struct {
	*testenv.Containerd
}

// ContainerdOptions change an isolated containerd's configuration.
type ContainerdOptions struct {
	// LogLevel is containerd's log level ("info" unless set); at "debug" it
	// logs each layer it applies ("diff applied", with the time it took).
	LogLevel string
	// Newest runs containerd 2 (`make containerd2`, bin/containerd2)
	// rather than Debian's 1.6.
	Newest bool
	// Subnet replaces the pod network's own /24.
	Subnet string
	// NoMasquerade: no ipMasq in the pod network (testenv.BridgeConflist).
	NoMasquerade bool
}

// StartContainerd starts an isolated containerd. Its sandbox image and
// every registry host it might be asked for are served by the test
// registry (busyboxRef's), so it never reaches docker.io or
// registry.k8s.io. The test is skipped only when containerd is not
// installed.
func StartContainerd(t testing.TB) *Containerd { return StartContainerdWith(t, ContainerdOptions{}) }

// StartContainerdWith is StartContainerd with options.
func StartContainerdWith(t testing.TB, opts ContainerdOptions) *Containerd {
	t.Helper()
	requireRoot(t)
	busybox := busyboxRef(t)
	sandboxImage := pauseImageRef(t)
	n := subnetSeq.Add(1)
	subnet := fmt.Sprintf("10.%d.%d.0/24", 200+os.Getpid()%50, n%250)
	if opts.Subnet != "" {
		subnet = opts.Subnet
	}
	newest := ""
	if opts.Newest {
		newest = filepath.Join(binDir(t), "containerd2")
	}
	c, err := testenv.StartContainerd(testenv.ContainerdOptions{
		SandboxImage: sandboxImage,
		Registry:     strings.SplitN(busybox, "/", 2)[0],
		// The upstream hosts a default or a typo could name.
		MirrorHosts:  testenv.CritestUpstreamHosts,
		Subnet:       subnet,
		LogLevel:     opts.LogLevel,
		BinDir:       newest,
		NoMasquerade: opts.NoMasquerade,
	})
	if errors.Is(err, testenv.ErrNoContainerd) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd log (%s):\n%s", c.LogPath, tail(c.Log(), 200))
		}
		for _, err := range c.Cleanup() {
			t.Error(err)
		}
	})
	return &Containerd{c}
}

// pauseImage is husk's built-in infra rootfs (the static pause program) as
// an image: containerd's sandbox_image, so both runtimes run the same infra
// process.
var pauseImage struct {
	once sync.Once
	ref  string
	err  error
}

// pauseImageRef pushes the pause image to the test registry (busyboxRef's)
// once and returns its reference there.
func pauseImageRef(t testing.TB) string {
	t.Helper()
	bb := busyboxRef(t)
	pauseImage.once.Do(func() {
		var img v1.Image
		if img, pauseImage.err = buildPauseImage(); pauseImage.err != nil {
			return
		}
		pauseImage.ref = strings.SplitN(bb, "/", 2)[0] + "/husk/pause:test"
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		pauseImage.err = testenv.Push(ctx, img, pauseImage.ref)
	})
	if pauseImage.err != nil {
		t.Fatalf("pause image in the test registry: %v", pauseImage.err)
	}
	return pauseImage.ref
}

// buildPauseImage wraps pause.Layer() as one image layer, run as
// 65535:65535 like registry.k8s.io/pause.
func buildPauseImage() (v1.Image, error) {
	data, err := pause.Layer()
	if err != nil {
		return nil, err
	}
	// The layer must be a valid tar for the runtimes' unpackers.
	if _, err := tar.NewReader(bytes.NewReader(data)).Next(); err != nil {
		return nil, fmt.Errorf("pause layer: %w", err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.DockerLayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("pause layer: %w", err)
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: testenv.Platform().Architecture,
		OS:           "linux",
		Created:      v1.Time{Time: testenv.Epoch},
		Config: v1.Config{
			Entrypoint: []string{"/pause"},
			User:       "65535:65535",
			WorkingDir: "/",
		},
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.DockerLayer,
		History: v1.History{Created: v1.Time{Time: testenv.Epoch}, CreatedBy: "husk: built-in pause"}})
}
