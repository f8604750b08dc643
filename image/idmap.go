package image

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/husk-runtime/husk/mount"
	"golang.org/x/sys/unix"
)

// idmapDirName holds the short-lived idmapped clones of layers, under the
// store's root: <root>/idmap/<token>/<layer dir name>.
const idmapDirName = "idmap"

// idmapLowers clones each lower dir as a detached mount, idmaps the clone
// with the user namespace at userns (mount_setattr MOUNT_ATTR_IDMAP, Linux
// 5.12; overlayfs accepts idmapped layers since 5.19) and attaches it under
// a fresh <root>/idmap/<token>/. It returns the clones' paths, in order, to
// use as overlay lower dirs, and a cleanup that detaches and removes them.
//
// The clones' paths end in the layer dir's own name, so mountedLowerDirs
// can still tell which layers a mounted rootfs uses, and they are about as
// long as the layer paths, so the overlay options stay under a page. On
// failure nothing is left mounted.
func (s *Store) idmapLowers(lowers []string, userns string) (_ []string, cleanup func(), err error) {
	ns, err := os.Open(userns)
	if err != nil {
		return nil, nil, fmt.Errorf("idmap: open user namespace: %w", err)
	}
	defer ns.Close()

	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, nil, fmt.Errorf("idmap: %w", err)
	}
	base := filepath.Join(s.root, idmapDirName, hex.EncodeToString(b[:]))
	if err := os.MkdirAll(base, 0o700); err != nil {
		return nil, nil, fmt.Errorf("idmap: %w", err)
	}
	var attached []string
	cleanup = func() {
		for _, p := range attached {
			// MNT_DETACH: overlayfs holds its own clone, and nothing else
			// may keep this one busy.
			_ = mount.Unmount(p)
			// rmdir, never RemoveAll: were the clone still mounted, a
			// recursive removal would delete the shared layer's files.
			_ = os.Remove(p)
		}
		_ = os.Remove(base)
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()

	out := make([]string, 0, len(lowers))
	for _, l := range lowers {
		dst := filepath.Join(base, filepath.Base(l))
		if err := idmapClone(l, dst, int(ns.Fd())); err != nil {
			return nil, nil, err
		}
		attached = append(attached, dst)
		out = append(out, dst)
	}
	return out, cleanup, nil
}

// idmapClone attaches at dst a clone of the mount tree at src, idmapped
// with the user namespace usernsFd.
func idmapClone(src, dst string, usernsFd int) error {
	// OPEN_TREE_CLONE makes a detached copy: the idmap applies to it alone,
	// never to the layer dir other containers see.
	tree, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("idmap: open_tree %s: %w", src, err)
	}
	defer unix.Close(tree)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(usernsFd)}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		return fmt.Errorf("idmap: mount_setattr(MOUNT_ATTR_IDMAP) on a clone of %s (the filesystem may not support idmapped mounts): %w", src, err)
	}
	if err := os.Mkdir(dst, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("idmap: %w", err)
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("idmap: move_mount to %s: %w", dst, err)
	}
	return nil
}

// cleanIdmapDir detaches and removes the idmapped clones a crash between
// idmapLowers and its cleanup left behind.
func (s *Store) cleanIdmapDir() error {
	dir := filepath.Join(s.root, idmapDirName)
	tokens, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("image store: read %s: %w", dir, err)
	}
	for _, t := range tokens {
		base := filepath.Join(dir, t.Name())
		clones, _ := os.ReadDir(base)
		for _, c := range clones {
			p := filepath.Join(base, c.Name())
			if err := mount.Unmount(p); err != nil {
				return fmt.Errorf("image store: %w", err)
			}
			// rmdir only (see idmapLowers).
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("image store: %w", err)
			}
		}
		if err := os.Remove(base); err != nil {
			return fmt.Errorf("image store: %w", err)
		}
	}
	return nil
}
