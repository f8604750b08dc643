// Package mount takes mounts down, the one way husk does it: idempotent
// (a path not mounted, or not there, is fine, so a removal cut short can
// run again) and detaching (MNT_DETACH: a process that still holds the
// mount, a CNI plugin in a netns or a port-forward, must not make removal
// fail; the kernel frees it when its last user leaves).
package mount

import (
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Unmount detaches every mount stacked at path.
func Unmount(path string) error {
	// A path can be mounted more than once (a bind of a bind, or by
	// another tool): until it is not a mount point any more.
	for range 16 {
		// Asked first, so that a path that is no mount point costs no
		// umount(2), which an unprivileged caller is refused (EPERM) even
		// when there is nothing to do.
		m, err := mountinfo.Mounted(path)
		if errors.Is(err, os.ErrNotExist) || err == nil && !m {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", path, err)
		}
		// EINVAL: it stopped being a mount point meanwhile.
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return &os.PathError{Op: "umount", Path: path, Err: err}
		}
	}
	return fmt.Errorf("unmount %s: still mounted after 16 unmounts", path)
}

// UnmountAll detaches every mount at or below dir, deepest first.
func UnmountAll(dir string) error {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].Mountpoint) > len(mounts[j].Mountpoint) })
	for _, m := range mounts {
		if err := Unmount(m.Mountpoint); err != nil {
			return err
		}
	}
	return nil
}
