package sandbox

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/husk-runtime/husk/hostcgroup"
)

// openFiles over plain files: each read is the file's content now, the fd
// stays open between reads, forget closes it, and past the limit a file is
// read with an open of its own.
func TestOpenFilesKeepsFilesOpen(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeFiles(t, dir, map[string]string{"a": "1\n", "b": "x"})
	o := &openFiles{groups: map[string]*fileGroup{}, limit: 1}
	src := o.source("c/one")
	if v, err := uintIn(src, a); err != nil || v != 1 {
		t.Fatalf("first read: %d, %v", v, err)
	}
	// Rewritten in place, as the kernel regenerates a cgroup file: the
	// open fd reads the new content from offset 0.
	if err := os.WriteFile(a, []byte("22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if v, err := uintIn(src, a); err != nil || v != 22 {
		t.Fatalf("second read: %d, %v", v, err)
	}
	if n := o.open(); n != 1 {
		t.Fatalf("%d files open, want 1", n)
	}
	// The limit is reached: b is read all the same, and not kept.
	buf := make([]byte, 0, 16)
	if got, err := src(b, &buf); err != nil || string(got) != "x" {
		t.Fatalf("read past the limit: %q, %v", got, err)
	}
	if n := o.open(); n != 1 {
		t.Fatalf("%d files open past the limit of 1", n)
	}
	o.forget("c/one")
	if n := o.open(); n != 0 {
		t.Fatalf("%d files open after forget", n)
	}
	// A reader still holding the forgotten group reads without keeping.
	if v, err := uintIn(src, a); err != nil || v != 22 {
		t.Fatalf("read after forget: %d, %v", v, err)
	}
	if n := o.open(); n != 0 {
		t.Fatalf("%d files open after a read through a forgotten group", n)
	}
	if _, err := uintIn(o.source("c/two"), filepath.Join(dir, "gone")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v, want not exist", err)
	}
	if n := o.open(); n != 0 {
		t.Fatalf("%d files open after a failed open", n)
	}
}

// A file larger than the buffer is read whole: the buffer grows and the
// read starts over at offset 0.
func TestOpenFilesGrowsBuffer(t *testing.T) {
	dir := t.TempDir()
	want := strings.Repeat("total_rss 4096\n", 100)
	writeFiles(t, dir, map[string]string{"memory.stat": want})
	o := &openFiles{groups: map[string]*fileGroup{}, limit: 8}
	buf := make([]byte, 0, 64)
	got, err := o.source("c/x")(filepath.Join(dir, "memory.stat"), &buf)
	if err != nil || string(got) != want {
		t.Fatalf("read %d bytes (%v), want %d", len(got), err, len(want))
	}
}

// On a real cgroup: the kept file reads fresh figures, the cgroup is
// removed with it open, and the next read says the cgroup is gone and
// closes the group.
func TestOpenFilesRemovedCgroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a cgroup")
	}
	l, err := hostcgroup.Read()
	if err != nil {
		t.Fatal(err)
	}
	root, ok := l.Dir("memory")
	if !ok {
		t.Skip("host has no memory controller")
	}
	file := "memory.usage_in_bytes"
	if l.Mode == hostcgroup.Unified {
		file = "memory.current"
	}
	cg := filepath.Join(root, "husk-openfiles-test-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(cg) })
	o := newOpenFiles()
	src := o.source("c/x")
	for range 2 {
		if _, err := uintIn(src, filepath.Join(cg, file)); err != nil {
			t.Fatal(err)
		}
	}
	if n := o.open(); n != 1 {
		t.Fatalf("%d files open, want 1", n)
	}
	if err := os.Remove(cg); err != nil {
		t.Fatalf("rmdir with a file kept open: %v", err)
	}
	if _, err := uintIn(src, filepath.Join(cg, file)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read of a removed cgroup: %v, want not exist", err)
	}
	if n := o.open(); n != 0 {
		t.Fatalf("%d files open after the cgroup went", n)
	}
}
