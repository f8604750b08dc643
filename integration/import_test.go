package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/husk-runtime/husk/integration/testenv"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// husk runs the built husk CLI against d's socket and returns its stdout,
// its stderr and its error.
func husk(t *testing.T, d *Daemon, stdin *os.File, args ...string) (string, string, error) {
	t.Helper()
	full := append(append([]string(nil), args...), "--endpoint", "unix://"+d.Socket, "--timeout", "5m")
	cmd := exec.Command(filepath.Join(binDir(t), "husk"), full...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func huskOK(t *testing.T, d *Daemon, stdin *os.File, args ...string) string {
	t.Helper()
	out, errOut, err := husk(t, d, stdin, args...)
	if err != nil {
		t.Fatalf("husk %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func imageStatus(t *testing.T, d *Daemon, ref string) *runtimeapi.Image {
	t.Helper()
	resp, err := d.Img.ImageStatus(ctxT(t, time.Minute), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		t.Fatalf("ImageStatus %s: %v", ref, err)
	}
	return resp.GetImage()
}

// contentTemps lists what an import left half made in a daemon's store.
func contentTemps(d *Daemon) []string {
	var out []string
	for _, dir := range []string{"content/blobs/sha256", "layers", "images"} {
		ents, _ := os.ReadDir(filepath.Join(d.Root, dir))
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".tmp-") {
				out = append(out, filepath.Join(dir, e.Name()))
			}
		}
	}
	return out
}

// TestImportAirGapped moves an image from one node to another that
// reaches no registry: pull on the first, `husk image export` in both
// formats, stop the registry, `husk image import` into a fresh daemon
// that has no registry configured, and run a container from it.
func TestImportAirGapped(t *testing.T) {
	requireRoot(t)
	reg := testenv.StartRegistry(t)
	img, err := testenv.BuildBusybox(testenv.DefaultCacheDir())
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Addr + "/airgap/busybox:1"
	pctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := testenv.Push(pctx, img, ref); err != nil {
		t.Fatal(err)
	}

	src := StartDaemon(t)
	id := pull(t, src, ref)
	want := imageStatus(t, src, ref)
	dir := t.TempDir()
	files := map[string]string{"oci": filepath.Join(dir, "busybox.oci.tar"), "docker": filepath.Join(dir, "busybox.docker.tar")}
	out := huskOK(t, src, nil, "image", "export", ref, files["oci"]) // oci is the default
	if !strings.Contains(out, "exported "+ref+" to "+files["oci"]) {
		t.Errorf("export output %q", out)
	}
	// The docker archive goes to stdout, as into a pipe.
	out = huskOK(t, src, nil, "image", "export", "--format", "docker", ref, "-")
	if err := os.WriteFile(files["docker"], []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}

	// The built-in pause has no layer blob to export: one line with the
	// gRPC code, and no file.
	imgs, err := src.Img.ListImages(ctxT(t, time.Minute), &runtimeapi.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var pause string
	for _, i := range imgs.Images {
		if i.Pinned {
			pause = i.RepoTags[0]
		}
	}
	noFile := filepath.Join(dir, "pause.tar")
	_, errOut, err := husk(t, src, nil, "image", "export", pause, noFile)
	if err == nil || !strings.Contains(errOut, "FailedPrecondition") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("export of the built-in pause: %v, stderr %q; want one line with FailedPrecondition", err, errOut)
	}
	if _, err := os.Stat(noFile); !os.IsNotExist(err) {
		t.Errorf("failed export left %s (stat: %v)", noFile, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != len(files) {
		t.Errorf("export dir holds %d files, want %d", len(ents), len(files))
	}

	if _, err := src.Img.RemoveImage(ctxT(t, time.Minute), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Stop(); err != nil {
		t.Fatalf("stop registry: %v", err)
	}

	for _, format := range []string{"oci", "docker"} {
		t.Run(format, func(t *testing.T) {
			d := StartDaemon(t)
			// A truncated archive is refused, on one line, leaving nothing.
			data, err := os.ReadFile(files[format])
			if err != nil {
				t.Fatal(err)
			}
			bad := filepath.Join(t.TempDir(), "truncated.tar")
			if err := os.WriteFile(bad, data[:len(data)/2], 0o644); err != nil {
				t.Fatal(err)
			}
			_, errOut, err := husk(t, d, nil, "image", "import", bad)
			if err == nil || !strings.Contains(errOut, "InvalidArgument") || !strings.Contains(errOut, "truncated") {
				t.Errorf("import of a truncated archive: %v, stderr %q; want InvalidArgument naming it truncated", err, errOut)
			}
			if left := contentTemps(d); len(left) > 0 {
				t.Errorf("failed import left %v", left)
			}

			// The docker archive comes through stdin, as from a pipe.
			var out string
			if format == "docker" {
				f, err := os.Open(files[format])
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				out = huskOK(t, d, f, "image", "import", "-")
			} else {
				out = huskOK(t, d, nil, "image", "import", files[format])
			}
			if !strings.Contains(out, "imported "+id+" "+ref) {
				t.Errorf("import output %q, want the id %s and %s", out, id, ref)
			}
			got := imageStatus(t, d, ref)
			if got.GetId() != id || !slices.Equal(got.RepoTags, want.RepoTags) || got.Size != want.Size {
				t.Errorf("imported image %s %v size %d, want %s %v size %d", got.GetId(), got.RepoTags, got.Size, id, want.RepoTags, want.Size)
			}
			// An OCI layout carries the manifest, so the repo digest
			// survives; a docker save tarball has none.
			if format == "oci" && !slices.Equal(got.RepoDigests, want.RepoDigests) {
				t.Errorf("repo digests %v, want %v", got.RepoDigests, want.RepoDigests)
			}

			pod := podConfig("imported-" + format)
			podID := runPod(t, d, pod)
			c := runContainer(t, d, podID, pod, ctrConfig("app", ref, "sleep", "3600"))
			ctx := ctxT(t, time.Minute)
			ex, err := d.RT.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: c, Cmd: []string{"sh", "-c", "echo air-gapped $(hostname)"}, Timeout: 10})
			if err != nil || ex.ExitCode != 0 || strings.TrimSpace(string(ex.Stdout)) != "air-gapped imported-"+format {
				t.Fatalf("exec in the imported image: %v, exit %d, stdout %q, stderr %q", err, ex.GetExitCode(), ex.GetStdout(), ex.GetStderr())
			}
			cs, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c})
			// ImageRef is a repo digest when the image has one (as in
			// containerd), else the id.
			if err != nil || !slices.Contains(append(slices.Clone(got.RepoDigests), id), cs.Status.ImageRef) {
				t.Errorf("container image ref %q, %v; want %s or one of %v", cs.GetStatus().GetImageRef(), err, id, got.RepoDigests)
			}
			if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
				t.Fatal(err)
			}
			assertPodGone(t, d, podID)
			assertDaemonClean(t, d)
		})
	}
}
