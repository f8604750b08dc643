package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/husk-runtime/husk/mount"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// IDMap says how a container in a user namespace sees the host's ids. A
// rootfs mounted with one shows each image file owned by uid u as owned by
// u inside that namespace (on the host: UID+u), without a copy or a chown
// of the shared layers.
type IDMap struct {
	// Userns is a file naming the user namespace that holds the mapping:
	// a pinned nsfs bind mount or /proc/PID/ns/user.
	Userns string
	// UID and GID are the host ids of the container's root.
	UID, GID uint32
}

// Mount makes dir/rootfs the root filesystem of a container of img: an
// overlay of the image's layers, with dir/upper and dir/work taking the
// container's writes, or with no upper dir at all when readonly. With an
// idmap, each layer is seen through an idmapped mount (see idmapLowers)
// and the upper dir belongs to the namespace's root. It is idempotent: an
// already mounted dir/rootfs is returned as is.
func (s *Store) Mount(img Image, dir string, readonly bool, idmap *IDMap) (string, error) {
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
	top := lowers[0]
	if idmap != nil {
		mapped, cleanup, err := s.idmapLowers(lowers, idmap.Userns)
		if err != nil {
			return "", fmt.Errorf("mount %s: %w", rootfs, err)
		}
		// overlayfs takes its own private clone of each lower mount, so
		// the idmapped ones are detached again as soon as it is mounted.
		defer cleanup()
		lowers = mapped
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
		if err := makeUpper(upper, top, idmap); err != nil {
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
// so this is what the container sees as "/". The upper dir is not
// idmapped, so with an idmap its owner is the host id the layer's owner
// maps to: files the container creates land there as their host ids too.
func makeUpper(upper, top string, idmap *IDMap) error {
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
	// os.Stat's Sys is a *syscall.Stat_t (x/sys/unix's is another type).
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
		uid, gid := st.Uid, st.Gid
		if idmap != nil {
			uid, gid = uid+idmap.UID, gid+idmap.GID
		}
		if err := os.Lchown(upper, int(uid), int(gid)); err != nil {
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
func Unmount(dir string) error { return mount.Unmount(filepath.Join(dir, "rootfs")) }

// Unmount is the package's Unmount, for callers that hold the store
// behind an interface.
func (s *Store) Unmount(dir string) error { return Unmount(dir) }
