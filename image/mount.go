package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Mount makes dir/rootfs the root filesystem of a container of img: an
// overlay of the image's layers, with dir/upper and dir/work taking the
// container's writes, or with no upper dir at all when readonly. It is
// idempotent: an already mounted dir/rootfs is returned as is.
func (s *Store) Mount(img Image, dir string, readonly bool) (string, error) {
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return "", fmt.Errorf("mount %s: %w", rootfs, err)
	}
	if m, err := mountinfo.Mounted(rootfs); err != nil {
		return "", fmt.Errorf("mount %s: %w", rootfs, err)
	} else if m {
		return rootfs, nil
	}

	// overlayfs wants the topmost lower dir first.
	lowers := make([]string, 0, len(img.Layers)+1)
	for i := len(img.Layers) - 1; i >= 0; i-- {
		lowers = append(lowers, img.Layers[i])
	}
	// A mount with no upper dir needs two lower dirs, and an image may have
	// no layer at all; an empty dir fills in, so every rootfs is an overlay
	// and collection can find a layer in use from mountinfo alone.
	if len(lowers) == 0 || (readonly && len(lowers) == 1) {
		empty, err := s.emptyDir()
		if err != nil {
			return "", err
		}
		lowers = append(lowers, empty)
	}
	for _, l := range lowers {
		if strings.ContainsAny(l, ":,") {
			return "", fmt.Errorf("mount %s: layer path %q has ':' or ','", rootfs, l)
		}
	}
	opts := "lowerdir=" + strings.Join(lowers, ":")
	var flags uintptr
	if readonly {
		flags |= unix.MS_RDONLY
	} else {
		upper := filepath.Join(dir, "upper")
		work := filepath.Join(dir, "work")
		if err := os.MkdirAll(work, 0o700); err != nil {
			return "", fmt.Errorf("mount %s: %w", rootfs, err)
		}
		if err := makeUpper(upper, lowers[0]); err != nil {
			return "", fmt.Errorf("mount %s: %w", rootfs, err)
		}
		opts += ",upperdir=" + upper + ",workdir=" + work
	}
	if len(opts) >= os.Getpagesize() {
		return "", fmt.Errorf("mount %s: overlay options are %d bytes, over the kernel's %d", rootfs, len(opts), os.Getpagesize()-1)
	}
	if err := unix.Mount("overlay", rootfs, "overlay", flags, opts); err != nil {
		return "", fmt.Errorf("mount overlay on %s: %w", rootfs, err)
	}
	return rootfs, nil
}

// makeUpper creates the upper dir with the mode and owner of the top layer's
// root: overlayfs takes the root directory's attributes from the upper dir,
// so this is what the container sees as "/".
func makeUpper(upper, top string) error {
	fi, err := os.Stat(top)
	if err != nil {
		return err
	}
	if err := os.Mkdir(upper, 0o755); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil
		}
		return err
	}
	if st, ok := fi.Sys().(*unix.Stat_t); ok && os.Geteuid() == 0 {
		if err := os.Lchown(upper, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	return os.Chmod(upper, fi.Mode().Perm()|fi.Mode()&(os.ModeSticky|os.ModeSetgid))
}

// emptyDir is an always-empty directory used as a filler lower layer.
func (s *Store) emptyDir() (string, error) {
	p := filepath.Join(s.layersDir, emptyLayerDir)
	if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("create %s: %w", p, err)
	}
	return p, nil
}

const emptyLayerDir = "empty"

// Unmount unmounts dir/rootfs if it is mounted, and removes nothing. It is
// idempotent: a dir that does not exist or is not mounted is fine.
func Unmount(dir string) error {
	rootfs := filepath.Join(dir, "rootfs")
	// Loop: a mount may be stacked on another.
	for range 16 {
		m, err := mountinfo.Mounted(rootfs)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", rootfs, err)
		}
		if !m {
			return nil
		}
		if err := unix.Unmount(rootfs, 0); err != nil {
			if errors.Is(err, unix.EBUSY) {
				// A process still holds it; detach now so removal can go on,
				// the kernel frees it when the last user leaves.
				err = unix.Unmount(rootfs, unix.MNT_DETACH)
			}
			if err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("unmount %s: %w", rootfs, err)
			}
		}
	}
	return fmt.Errorf("unmount %s: still mounted", rootfs)
}
