package nspin

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPinUnpin pins this process's own user namespace, checks the file is
// that namespace, and unpins it, twice (idempotent).
func TestPinUnpin(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to bind mount")
	}
	p := filepath.Join(t.TempDir(), "ns")
	if err := Create(p); err != nil {
		t.Fatal(err)
	}
	if err := Create(p); err == nil {
		t.Fatal("Create over an existing file succeeded")
	}
	if err := Pin("/proc/self/ns/user", p); err != nil {
		t.Fatal(err)
	}
	var pinned, own unix.Stat_t
	if err := unix.Stat(p, &pinned); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat("/proc/self/ns/user", &own); err != nil {
		t.Fatal(err)
	}
	if pinned.Ino != own.Ino || pinned.Dev != own.Dev {
		t.Fatalf("pinned file is inode %d, the namespace %d", pinned.Ino, own.Ino)
	}
	for range 2 {
		if err := Unpin(p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("file left after Unpin: %v", err)
	}
}
