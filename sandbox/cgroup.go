package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// removeCgroup removes a cgroup husk made, in every hierarchy: libcontainer's
// Destroy removes only container leaves, and on a v1 host a pod's cgroup
// sits in ten of them. Children go first: rmdir fails while any exist.
func (m *Manager) removeCgroup(path string) error {
	if path == "" || path == "/" {
		return nil
	}
	var errs []error
	for _, root := range m.cg.Hierarchies() {
		if err := rmdirTree(filepath.Join(root, path)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeEmptyCgroup drops husk's shared parent cgroup once no pod uses it;
// rmdir fails harmlessly while one does.
func (m *Manager) removeEmptyCgroup(path string) {
	if path == "/" || path == "" {
		return
	}
	for _, root := range m.cg.Hierarchies() {
		_ = os.Remove(filepath.Join(root, path))
	}
}

// fitResources drops, in place, the limits this host's cgroups cannot
// apply (kubelet's hugepage limits on a node whose hugetlb no manager can
// write, a swap limit without swap accounting, ...), warning once per
// controller: a start that runc would fail on them is worse than a
// container without a limit its node cannot enforce anyway.
func (m *Manager) fitResources(r *specs.LinuxResources) {
	m.cg.Warn(m.log, m.cg.Fit(r))
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
