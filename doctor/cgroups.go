package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/husk-runtime/husk/hostcgroup"
	"github.com/moby/sys/mountinfo"
)

// huskCgroupParent is where husk puts a pod's cgroup when kubelet gives no
// cgroup_parent (sandbox.cgroupParent).
const huskCgroupParent = "/husk"

// cgroupRoots lists the mount points of the hierarchies a husk cgroup can
// be in, as the daemon removes them (hostcgroup).
func cgroupRoots(ms []*mountinfo.Info) []string {
	return hostcgroup.FromMounts(ms, nil).Hierarchies()
}

// findCgroups finds cgroups of pods that are not live:
//   - /husk/<id>, the cgroup husk makes for a pod, when this husk's dirs
//     name that pod too (traced). The /husk parent is shared by every husk
//     daemon on the node (tests run several side by side), so an id that
//     nothing under this husk's root and state names may be another
//     daemon's: it is reported in foreign, never removed;
//   - <parent>/<id> for the pod and each container of a record that is
//     a leftover itself (kubelet's cgroup_parent), since the record proves
//     they are this husk's.
func findCgroups(ms []*mountinfo.Info, known Known, traced map[string]bool, stale map[string]*record) (out []Leftover, foreign []string) {
	roots := cgroupRoots(ms)
	byPath := map[string][]string{} // cgroup path -> its dirs
	podOf := map[string]string{}    // cgroup path -> pod id
	for _, root := range roots {
		ents, err := os.ReadDir(filepath.Join(root, huskCgroupParent))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if e.IsDir() && isID(e.Name()) && !known.pod(e.Name()) {
				p := huskCgroupParent + "/" + e.Name()
				byPath[p] = append(byPath[p], filepath.Join(root, p))
				podOf[p] = e.Name()
			}
		}
	}
	// Cgroups a stale record names under kubelet's parent.
	for id, r := range stale {
		if r.Err != nil || r.Missing || r.Pod.Cgroup == "" || r.Pod.OwnCgroup {
			continue
		}
		for _, leaf := range append([]string{id}, r.Containers...) {
			p := filepath.Join(r.Pod.Cgroup, leaf)
			for _, root := range roots {
				if fi, err := os.Stat(filepath.Join(root, p)); err == nil && fi.IsDir() {
					byPath[p] = append(byPath[p], filepath.Join(root, p))
					podOf[p] = id
				}
			}
		}
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		pod := podOf[p]
		if filepath.Dir(p) == huskCgroupParent && !traced[pod] {
			foreign = append(foreign, p)
			continue
		}
		out = append(out, Leftover{Kind: KindCgroup, Path: p, Pod: pod, dirs: byPath[p],
			Reason: fmt.Sprintf("cgroup of pod %s, which is not live (in %d %s)", short(pod), len(byPath[p]), plural(len(byPath[p]), "hierarchy", "hierarchies"))})
	}
	return out, foreign
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// removeCgroup removes a leftover cgroup in every hierarchy, children
// first. What still runs in it is what a killed shim left of the pod (its
// infra and app processes), so it is killed first: rmdir fails while any
// process is in the cgroup.
func (h *Host) removeCgroup(l Leftover) (string, error) {
	killed := 0
	for _, dir := range l.dirs {
		n, err := h.killCgroupProcs(dir)
		killed += n
		if err != nil {
			return "", err
		}
	}
	var errs []error
	removed := 0
	for _, dir := range l.dirs {
		n, err := rmdirTree(dir)
		removed += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	done := "removed"
	if removed == 0 {
		done = "gone already"
	}
	if killed > 0 {
		done = fmt.Sprintf("killed %d %s and removed", killed, plural(killed, "process", "processes"))
	}
	return done, nil
}

// killCgroupProcs SIGKILLs every process in dir and its children and waits
// (up to 5s) for them to leave.
func (h *Host) killCgroupProcs(dir string) (int, error) {
	procs := func() []int {
		var pids []int
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
			return nil
		})
		return pids
	}
	pids := procs()
	for _, pid := range pids {
		if err := h.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return 0, fmt.Errorf("kill pid %d in cgroup %s: %w", pid, dir, err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); len(pids) > 0 && len(procs()) > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return len(pids), fmt.Errorf("cgroup %s: processes %v still there 5s after SIGKILL", dir, procs())
		}
	}
	return len(pids), nil
}

// rmdirTree removes a cgroup dir and its children, deepest first; cgroupfs
// dirs are removed with rmdir although they list files (the kernel's).
func rmdirTree(dir string) (int, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read cgroup %s: %w", dir, err)
	}
	n := 0
	for _, e := range ents {
		if e.IsDir() {
			m, err := rmdirTree(filepath.Join(dir, e.Name()))
			n += m
			if err != nil {
				return n, err
			}
		}
	}
	if err := os.Remove(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return n, nil
		}
		return n, fmt.Errorf("remove cgroup %s: %w", dir, err)
	}
	return n + 1, nil
}
