// Package nspin pins Linux namespaces to files: a bind mount of a
// /proc/.../ns/<type> file keeps the namespace alive after every process
// in it is gone (how iproute2 names network namespaces), so that it can be
// joined and cleaned up by path, also after a daemon restart.
package nspin

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/husk-runtime/husk/mount"
	"golang.org/x/sys/unix"
)

// Create makes the empty file a namespace is pinned on. O_EXCL: a file
// already there belongs to a pod with the same id (or a half-removed one);
// refusing keeps a second namespace from being stacked on it or, worse,
// one pod's namespace from being handed to another.
func Create(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create namespace file: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("create namespace file: %w", err)
	}
	return nil
}

// Pin bind-mounts the namespace file src (/proc/PID/ns/<type>, or
// /proc/thread-self/ns/<type>) onto path, made by Create.
func Pin(src, path string) error {
	if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
		return &os.PathError{Op: "mount --bind " + src, Path: path, Err: err}
	}
	return nil
}

// Unpin undoes Pin and removes the file. It is idempotent: an unmounted or
// missing path is not an error. The namespace itself is freed by the kernel
// once no process and no mount holds it any more.
func Unpin(path string) error {
	if err := mount.Unmount(path); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove namespace file: %w", err)
	}
	return nil
}
