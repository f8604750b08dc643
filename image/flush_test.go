package image

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// diskIndex reads the layer index as a restarted daemon would.
func diskIndex(t *testing.T, root string) layerIndex {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "layers", layerIndexFile))
	if err != nil {
		t.Fatal(err)
	}
	var idx layerIndex
	if err := json.Unmarshal(data, &idx); err != nil {
		t.Fatal(err)
	}
	return idx
}

// marks lists what the on-disk index marks unflushed: "layer <chain>" and
// "blob <digest>", each with its boot.
func marks(t *testing.T, root string) map[string]string {
	t.Helper()
	idx := diskIndex(t, root)
	out := make(map[string]string)
	for chain, e := range idx.Layers {
		if e.Unflushed != "" {
			out["layer "+chain] = e.Unflushed
		}
	}
	for d, boot := range idx.UnflushedBlobs {
		out["blob "+d] = boot
	}
	return out
}

// pullFlushImage pushes a two-layer image and pulls it into a store at
// root that never flushes by itself, in boot "boot-a".
func pullFlushImage(t *testing.T, root string) (*Store, Image, []v1.Hash) {
	t.Helper()
	host := newRegistry(t, nil)
	img := imageOf(t,
		layerOf(t, []entry{{name: "bin/", typ: '5', mode: 0o755}, {name: "bin/sh", body: "#!", mode: 0o755}}),
		layerOf(t, []entry{{name: "etc/", typ: '5', mode: 0o755}, {name: "etc/hostname", body: "x"}}),
	)
	push(t, host+"/test/flush:v1", img)
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(t, Config{Root: root, BootID: "boot-a", FlushDelay: time.Hour})
	got, err := s.Pull(context.Background(), host+"/test/flush:v1", nil)
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	return s, got, []v1.Hash{m.Layers[0].Digest, m.Layers[1].Digest}
}

func TestPullMarksUntilFlush(t *testing.T) {
	root := t.TempDir()
	s, img, blobs := pullFlushImage(t, root)
	got := marks(t, root)
	// Two layers and their two kept blobs, all of this boot.
	if len(got) != 4 {
		t.Fatalf("marks after the pull: %v, want 2 layers and 2 blobs", got)
	}
	for k, boot := range got {
		if boot != "boot-a" {
			t.Errorf("%s marked in boot %q, want boot-a", k, boot)
		}
	}
	for _, d := range blobs {
		if got["blob "+d.String()] == "" {
			t.Errorf("blob %s not marked: %v", d, got)
		}
		if !s.hasBlob(d) {
			t.Errorf("blob %s not kept", d)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if got := marks(t, root); len(got) != 0 {
		t.Errorf("marks after Flush: %v", got)
	}
	if _, err := s.Resolve(img.ID); err != nil {
		t.Errorf("image after Flush: %v", err)
	}
}

func TestFlushRunsAfterDelay(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, Config{Root: root, BootID: "boot-a", FlushDelay: 10 * time.Millisecond})
	if _, err := s.ImportBuiltin(context.Background(), "localhost/husk/pause:1", tarBytes(t, []entry{{name: "f", body: "f"}}), v1.Config{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); len(marks(t, root)) > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("marks 20 s after a 10 ms flush delay: %v", marks(t, root))
		}
	}
}

// A daemon killed before its flush (same boot): the page cache still holds
// what it wrote, so everything is kept and flushed by the next daemon.
func TestOpenAfterKillKeepsUnflushed(t *testing.T) {
	root := t.TempDir()
	_, img, _ := pullFlushImage(t, root)
	s := newStore(t, Config{Root: root, BootID: "boot-a", FlushDelay: time.Hour})
	got, err := s.Resolve(img.ID)
	if err != nil {
		t.Fatalf("image after a restart in the same boot: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(got.Layers[0], "bin/sh")); err != nil || string(b) != "#!" {
		t.Errorf("bin/sh = %q, %v", b, err)
	}
	if len(marks(t, root)) != 4 {
		t.Errorf("marks before the new daemon's flush: %v", marks(t, root))
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := marks(t, root); len(got) != 0 {
		t.Errorf("marks after the new daemon's flush: %v", got)
	}
}

// The machine went down before the flush (another boot): the layers may be
// torn, so they go and the image with them; a kept blob stays only if its
// bytes still have its digest. A pull makes the image whole again.
func TestOpenAfterMachineCrashDropsUnflushed(t *testing.T) {
	root := t.TempDir()
	_, img, blobs := pullFlushImage(t, root)
	// What a crash can leave of a file whose data never reached the disk.
	torn, err := (&Store{contentDir: filepath.Join(root, "content", "blobs", "sha256")}).blobPath(blobs[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(torn, 0); err != nil {
		t.Fatal(err)
	}

	s := newStore(t, Config{Root: root, BootID: "boot-b", FlushDelay: time.Hour})
	if _, err := s.Resolve(img.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("image with unflushed layers after a reboot: %v, want not found", err)
	}
	for _, l := range img.Layers {
		if _, err := os.Stat(l); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("unflushed layer %s after a reboot: %v", l, err)
		}
	}
	if !s.hasBlob(blobs[0]) {
		t.Errorf("intact blob %s removed", blobs[0])
	}
	if s.hasBlob(blobs[1]) {
		t.Errorf("torn blob %s kept", blobs[1])
	}
	if got := marks(t, root); len(got) != 0 {
		t.Errorf("marks after recovery: %v", got)
	}
	if got := diskIndex(t, root); len(got.Layers) != 0 {
		t.Errorf("layer index after recovery: %+v", got.Layers)
	}

	again, err := s.Pull(context.Background(), img.RepoTags[0], nil)
	if err != nil {
		t.Fatalf("pull after recovery: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(again.Layers[1], "etc/hostname")); err != nil || string(b) != "x" {
		t.Errorf("etc/hostname after the pull = %q, %v", b, err)
	}
	if !s.hasBlob(blobs[1]) {
		t.Errorf("torn blob %s not kept again by the pull", blobs[1])
	}
}
