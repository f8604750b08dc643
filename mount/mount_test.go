package mount

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// What is not mounted, or not there, is fine, also without privilege.
func TestUnmountNothing(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{dir, filepath.Join(dir, "missing")} {
		if err := Unmount(p); err != nil {
			t.Errorf("Unmount(%s): %v", p, err)
		}
	}
	if err := UnmountAll(dir); err != nil {
		t.Errorf("UnmountAll(%s): %v", dir, err)
	}
}

// Stacked mounts, and mounts below a dir, all go.
func TestUnmountStackedAndBelow(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	dir := t.TempDir()
	sub := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, dir, sub} {
		if err := unix.Mount("tmpfs", p, "tmpfs", 0, ""); err != nil {
			t.Fatal(err)
		}
		if p == dir {
			_ = os.MkdirAll(sub, 0o755) // on the new tmpfs
		}
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	if err := Unmount(dir); err != nil {
		t.Fatal(err)
	}
	if m, _ := mountinfo.Mounted(dir); m {
		t.Errorf("%s still mounted after Unmount", dir)
	}

	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	_ = os.MkdirAll(sub, 0o755)
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	if err := UnmountAll(dir); err != nil {
		t.Fatal(err)
	}
	ms, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if len(ms) != 0 {
		t.Errorf("%d mounts left under %s, first %s", len(ms), dir, ms[0].Mountpoint)
	}
}
