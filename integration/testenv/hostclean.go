package testenv

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// What the harnesses (the integration tests' daemons, the containerd one
// and the suite runners) use to find and undo what a runtime left on the
// host: mounts, processes and cgroups.

// MountsUnder lists mount points below dir.
func MountsUnder(dir string) []string {
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return []string{"mountinfo: " + err.Error()}
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Mountpoint)
	}
	return out
}

// UnmountUnder detaches every mount below dir, deepest first.
func UnmountUnder(dir string) {
	ms := MountsUnder(dir)
	sort.Slice(ms, func(i, j int) bool { return len(ms[i]) > len(ms[j]) })
	for _, m := range ms {
		_ = unix.Unmount(m, unix.MNT_DETACH)
	}
}

// PidsOf finds the processes of the program named prog (the end of their
// argv[0]) whose NUL-separated command line matches.
func PidsOf(prog string, matches func(cmdline string) bool) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmd), "\x00")
		if strings.HasSuffix(args[0], prog) && matches(string(cmd)) {
			out = append(out, pid)
		}
	}
	return out
}

// CgroupDirs lists where a cgroup path exists, in any hierarchy.
func CgroupDirs(path string) []string {
	ms, _ := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	var out []string
	for _, m := range ms {
		p := filepath.Join(m.Mountpoint, path)
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// CgroupPids lists the processes of a cgroup and its children, in every
// hierarchy.
func CgroupPids(path string) []int {
	seen := map[int]bool{}
	var out []int
	for _, dir := range CgroupDirs(path) {
		_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
			if err != nil || info.Name() != "cgroup.procs" {
				return nil
			}
			data, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
					seen[pid] = true
					out = append(out, pid)
				}
			}
			return nil
		})
	}
	return out
}

// RemoveCgroupTree removes a cgroup and its children in every hierarchy.
func RemoveCgroupTree(path string) {
	for _, dir := range CgroupDirs(path) {
		var dirs []string
		_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
			if err == nil && info.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = os.Remove(dirs[i])
		}
	}
}
