package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/moby/sys/mountinfo"
)

// removeCgroup removes a cgroup husk made, in every hierarchy: libcontainer's
// Destroy removes only container leaves, and on a v1 host a pod's cgroup
// sits in ten of them. Children go first: rmdir fails while any exist.
func removeCgroup(path string) error {
	if path == "" || path == "/" {
		return nil
	}
	roots, err := cgroupRoots()
	if err != nil {
		return err
	}
	var errs []error
	for _, root := range roots {
		dir := filepath.Join(root, path)
		if err := rmdirTree(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeEmptyCgroup drops husk's shared parent cgroup once no pod uses it;
// rmdir fails harmlessly while one does.
func removeEmptyCgroup(path string) {
	if path == "/" || path == "" {
		return
	}
	roots, _ := cgroupRoots()
	for _, root := range roots {
		_ = os.Remove(filepath.Join(root, path))
	}
}

// cgroupRoots lists the mount points of every cgroup hierarchy.
func cgroupRoots() ([]string, error) {
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil, fmt.Errorf("list cgroup mounts: %w", err)
	}
	roots := make([]string, 0, len(mounts))
	for _, m := range mounts {
		roots = append(roots, m.Mountpoint)
	}
	return roots, nil
}

func rmdirTree(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read cgroup %s: %w", dir, err)
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := rmdirTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	// cgroupfs directories are removed with rmdir even though they list
	// files: the files are the kernel's.
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove cgroup %s: %w", dir, err)
	}
	return nil
}

// cgroupParent validates kubelet's cgroup_parent for the cgroupfs driver.
func cgroupParent(parent, podID string) (path string, own bool, err error) {
	if parent == "" {
		return "/husk/" + podID, true, nil
	}
	if strings.HasSuffix(parent, ".slice") {
		return "", false, fmt.Errorf("cgroup_parent %q is a systemd slice, but husk runs the cgroupfs driver: %w", parent, ErrInvalid)
	}
	if !filepath.IsAbs(parent) {
		parent = "/" + parent
	}
	return filepath.Clean(parent), false, nil
}

// hugetlbAvailable reports whether the hugetlb controller is in use on this
// host: mounted as a v1 hierarchy, or enabled in the v2 root.
var hugetlbAvailable = sync.OnceValue(func() bool {
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return false
	}
	for _, m := range mounts {
		if m.FSType == "cgroup" && strings.Contains(","+m.VFSOptions+",", ",hugetlb,") {
			return true
		}
		if m.FSType == "cgroup2" {
			b, err := os.ReadFile(filepath.Join(m.Mountpoint, "cgroup.controllers"))
			if err == nil && strings.Contains(" "+strings.TrimSpace(string(b))+" ", " hugetlb ") {
				return true
			}
		}
	}
	return false
})
