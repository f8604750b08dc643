package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/cgroups/systemd"
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

// huskParent is the shared parent of the cgroups of pods that name none
// (crictl's, husk pod run's) under the cgroupfs driver; see cgroupParent.
const huskParent = "/husk"

// ReleaseCgroups drops husk's shared parent cgroup if no pod uses it
// (rmdir fails harmlessly while one does): the daemon calls it as it
// stops, so a node husk ran on is left as it was.
//
// It is kept, empty, for as long as the daemon runs, as containerd keeps
// /k8s.io and kubelet /kubepods. Removing it with the last pod made the
// next pod re-create it in every v1 hierarchy, and on a node with no
// other cpuset cgroup that flips the kernel's cpusets_enabled static key
// each time (cpuset_css_online, then a text poke with IPIs to every CPU):
// 13% of husk-oci's CPU in a sequential pod-start run here.
func (m *Manager) ReleaseCgroups() {
	if m.cfg.SystemdCgroup {
		return
	}
	for _, root := range m.cg.Hierarchies() {
		_ = os.Remove(filepath.Join(root, huskParent))
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

// scopePrefix names the systemd scopes of husk's containers
// (cri-husk-<id>.scope), as containerd's are cri-containerd-<id>.scope.
const scopePrefix = "cri-husk"

// defaultSlice holds the pods that name no parent under the systemd
// driver (crictl's, husk pod run's): a slice that always exists, so none
// is left behind by the last such pod.
const defaultSlice = "system.slice"

// podCgroupOf is where pod p's cgroup is for the driver in use: the
// cgroup path (cgroupfs) or slice (systemd), its path below the
// hierarchies' roots, and whether husk made it and removes it.
func (m *Manager) podCgroupOf(parent, podID string) (slice, path string, own bool, err error) {
	if !m.cfg.SystemdCgroup {
		path, own, err = cgroupParent(parent, podID)
		return "", path, own, err
	}
	slice, path, err = systemdParent(parent)
	return slice, path, false, err
}

// systemdParent validates kubelet's cgroup_parent for the systemd driver:
// a slice, whose cgroup systemd made and removes. kubelet (1.37) sends it
// as the slice's cgroup path
// (/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice);
// a bare slice name (kubepods-besteffort-pod<uid>.slice) is taken too, as
// containerd and CRI-O take both.
func systemdParent(parent string) (slice, path string, err error) {
	if parent == "" {
		parent = defaultSlice
	}
	slice = filepath.Base(parent)
	path, err = systemd.ExpandSlice(slice)
	if err == nil && strings.Contains(parent, "/") && filepath.Clean(parent) != path {
		err = fmt.Errorf("slice %s is at %s, not there", slice, path)
	}
	if err != nil {
		return "", "", fmt.Errorf("cgroup_parent %q is not a systemd slice, and husk runs the systemd cgroup driver: %v: %w", parent, err, ErrInvalid)
	}
	return slice, path, nil
}

// cgroupsPath is the spec's cgroupsPath of the container (or infra) id of
// pod p: a path below the pod's cgroup, or slice:prefix:name whose scope
// systemd makes.
func cgroupsPath(p *Pod, id string) string {
	if p.Slice != "" {
		return p.Slice + ":" + scopePrefix + ":" + id
	}
	return filepath.Join(p.Cgroup, id)
}

// ctrCgroup is the cgroup (below the hierarchies' roots) of container id
// in a pod whose cgroup is podCgroup, for the stats reads.
func (m *Manager) ctrCgroup(podCgroup, id string) string {
	if m.cfg.SystemdCgroup {
		return filepath.Join(podCgroup, scopePrefix+"-"+id+".scope")
	}
	return filepath.Join(podCgroup, id)
}

// cgroupParent validates kubelet's cgroup_parent for the cgroupfs driver.
func cgroupParent(parent, podID string) (path string, own bool, err error) {
	if parent == "" {
		return huskParent + "/" + podID, true, nil
	}
	if strings.HasSuffix(parent, ".slice") {
		return "", false, fmt.Errorf("cgroup_parent %q is a systemd slice, but husk runs the cgroupfs driver: %w", parent, ErrInvalid)
	}
	if !filepath.IsAbs(parent) {
		parent = "/" + parent
	}
	return filepath.Clean(parent), false, nil
}
