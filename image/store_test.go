package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/husk-runtime/husk/atomicfile"
	"golang.org/x/sys/unix"
)

func TestImportBuiltin(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, Config{})
	layer := tarBytes(t, []entry{{name: "pause", body: "\x7fELF", mode: 0o755}})
	cfg := v1.Config{Entrypoint: []string{"/pause"}}
	img, err := s.ImportBuiltin(ctx, "localhost/husk/pause:1.0", layer, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !img.Pinned || !slices.Equal(img.RepoTags, []string{"localhost/husk/pause:1.0"}) || len(img.RepoDigests) != 1 {
		t.Errorf("image = %+v", img)
	}
	if fi, err := os.Stat(filepath.Join(img.Layers[0], "pause")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("pause binary: %v %v", fi, err)
	}
	rec := s.recordPath(img.ID)
	before, err := os.Stat(rec)
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.ImportBuiltin(ctx, "localhost/husk/pause:1.0", layer, cfg)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(rec)
	if again.ID != img.ID || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("re-import: id %s vs %s, record rewritten: %v", again.ID, img.ID, !after.ModTime().Equal(before.ModTime()))
	}
	// Same content in a fresh store gives the same id.
	other := newStore(t, Config{})
	img2, err := other.ImportBuiltin(ctx, "localhost/husk/pause:1.0", layer, cfg)
	if err != nil || img2.ID != img.ID {
		t.Errorf("fresh store id %s, %v; want %s", img2.ID, err, img.ID)
	}
	if r, err := s.Resolve(img.RepoDigests[0]); err != nil || r.ID != img.ID {
		t.Errorf("Resolve by digest: %v", err)
	}
	if _, err := s.ImportBuiltin(ctx, "localhost/husk/pause@sha256:"+strings.Repeat("a", 64), layer, cfg); !errors.Is(err, ErrInvalidReference) {
		t.Errorf("import by digest err = %v", err)
	}
}

func TestOpenCleansHalfMadeState(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s := newStore(t, Config{Root: root})
	img, err := s.ImportBuiltin(ctx, "localhost/husk/pause:1", tarBytes(t, []entry{{name: "f", body: "f"}}), v1.Config{})
	if err != nil {
		t.Fatal(err)
	}
	junk := []string{
		filepath.Join(root, "layers", atomicfile.TempPrefix+"layer-123"),
		filepath.Join(root, "layers", "77"), // renamed into place, never indexed
		filepath.Join(root, "images", atomicfile.TempPrefix+"abc.json-1"),
		filepath.Join(root, "content", "blobs", "sha256", atomicfile.TempPrefix+"x"),
	}
	for _, j := range junk[:2] {
		if err := os.MkdirAll(filepath.Join(j, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, j := range junk[2:] {
		if err := os.WriteFile(j, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s2 := newStore(t, Config{Root: root})
	for _, j := range junk {
		if _, err := os.Stat(j); !os.IsNotExist(err) {
			t.Errorf("%s survived Open: %v", j, err)
		}
	}
	got, err := s2.Resolve("localhost/husk/pause:1")
	if err != nil || got.ID != img.ID || !got.Pinned || !slices.Equal(got.Layers, img.Layers) {
		t.Errorf("record after reopen: %+v, %v", got, err)
	}
	// A new layer never reuses the name of the removed orphan's sibling.
	s2.mu.Lock()
	next := s2.layers.Next
	s2.mu.Unlock()
	if next <= 77 {
		t.Errorf("next layer number %d, want > 77", next)
	}

	// A record whose layer vanished is dropped rather than served.
	if err := os.RemoveAll(img.Layers[0]); err != nil {
		t.Fatal(err)
	}
	s3 := newStore(t, Config{Root: root})
	if _, err := s3.Resolve(img.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("record with missing layer: %v", err)
	}
}

func TestFsInfo(t *testing.T) {
	s := newStore(t, Config{})
	used0, inodes0, mp, err := s.FsInfo()
	if err != nil {
		t.Fatal(err)
	}
	if mp != s.layersDir {
		t.Errorf("mountpoint %s", mp)
	}
	if _, err := s.ImportBuiltin(context.Background(), "localhost/x:1", tarBytes(t, []entry{{name: "big", body: strings.Repeat("z", 1<<20)}}), v1.Config{}); err != nil {
		t.Fatal(err)
	}
	used1, inodes1, _, err := s.FsInfo()
	if err != nil {
		t.Fatal(err)
	}
	if used1 < used0+1<<20 || inodes1 <= inodes0 {
		t.Errorf("usage %d->%d bytes, %d->%d inodes", used0, used1, inodes0, inodes1)
	}
}

func TestMountUnmount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	ctx := context.Background()
	s := newStore(t, Config{})
	base, err := s.ImportBuiltin(ctx, "localhost/base:1", tarBytes(t, []entry{
		{name: "./", typ: '5', mode: 0o755},
		{name: "etc/", typ: '5', mode: 0o755},
		{name: "etc/a", body: "base"},
		{name: "etc/gone", body: "x"},
	}), v1.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// Build a two-layer image record by hand from the base layer plus a
	// layer with a whiteout.
	top := t.TempDir()
	if err := unpackEntries(t, top, []entry{{name: "etc/.wh.gone"}, {name: "etc/b", body: "top"}}); err != nil {
		t.Fatal(err)
	}
	img := base
	img.Layers = append(slices.Clone(base.Layers), top)

	dir := t.TempDir()
	rootfs, err := s.Mount(img, dir, false, nil)
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	t.Cleanup(func() { Unmount(dir) })
	for f, want := range map[string]string{"etc/a": "base", "etc/b": "top"} {
		if b, err := os.ReadFile(filepath.Join(rootfs, f)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v", f, b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(rootfs, "etc/gone")); !os.IsNotExist(err) {
		t.Errorf("whited-out file visible: %v", err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "new"), []byte("w"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "upper", "new")); err != nil {
		t.Errorf("write did not land in upper: %v", err)
	}
	if again, err := s.Mount(img, dir, false, nil); err != nil || again != rootfs {
		t.Errorf("second Mount: %s, %v", again, err)
	}
	// A mounted layer survives removal of its image.
	if err := s.Remove(base.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(base.Layers[0]); err != nil {
		t.Errorf("mounted layer was collected: %v", err)
	}
	for range 2 {
		if err := Unmount(dir); err != nil {
			t.Fatalf("Unmount: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "upper", "new")); err != nil {
		t.Errorf("Unmount removed the upper dir: %v", err)
	}
	if err := Unmount(filepath.Join(dir, "nonexistent")); err != nil {
		t.Errorf("Unmount of a missing dir: %v", err)
	}

	// Read-only, single layer.
	s2 := newStore(t, Config{})
	ro, err := s2.ImportBuiltin(ctx, "localhost/ro:1", tarBytes(t, []entry{{name: "f", body: "ro"}}), v1.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rodir := t.TempDir()
	rootfs, err = s2.Mount(ro, rodir, true, nil)
	if err != nil {
		t.Fatalf("read-only Mount: %v", err)
	}
	t.Cleanup(func() { Unmount(rodir) })
	if b, err := os.ReadFile(filepath.Join(rootfs, "f")); err != nil || string(b) != "ro" {
		t.Errorf("ro f = %q, %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "w"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("write to read-only rootfs: %v, want EROFS", err)
	}
	if err := Unmount(rodir); err != nil {
		t.Fatal(err)
	}
}
