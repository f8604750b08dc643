// Package hostcgroup learns, once, how this host's cgroups are laid out,
// and answers every cgroup question husk has from that one reading: which
// controllers a container's limits can be written to, where a controller's
// files are, and which of kubelet's limits must be dropped here.
//
// Nodes differ, and the machine we test on shows one shape only:
//
//   - unified: one cgroup2 hierarchy at /sys/fs/cgroup; its
//     cgroup.controllers says what is delegated to us (a nested or rootless
//     node may lack cpuset, hugetlb, pids, ...).
//   - hybrid: v1 hierarchies for the controllers, plus a cgroup2 mount
//     (/sys/fs/cgroup/unified) that carries every controller no v1
//     hierarchy has bound. libcontainer's v1 manager writes limits to v1
//     hierarchies only, so a controller found on the unified mount alone is
//     of no use to it: runc then fails every start with "cannot set hugetlb
//     limit: container could not join or create cgroup". That was a fresh
//     node of our own kind, whose hugetlb is on the unified mount.
//   - legacy: v1 only. Controllers are joined (cpu,cpuacct in one
//     hierarchy, the usual systemd layout) or apart (one each), and any of
//     them may be absent.
//
// A limit the host cannot apply is dropped with one warning naming the
// controller, as containerd and CRI-O do, never a failed container start.
package hostcgroup

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/moby/sys/mountinfo"
	"github.com/opencontainers/cgroups"
)

// Mode is the cgroup shape of a host.
type Mode string

// The shapes husk knows.
const (
	Unified Mode = "unified" // cgroup v2 only
	Hybrid  Mode = "hybrid"  // v1 controllers, plus a cgroup2 mount beside them
	Legacy  Mode = "legacy"  // cgroup v1 only
)

// Layout is the host's cgroup layout, read once at daemon start.
type Layout struct {
	Mode Mode
	// V1 maps each controller bound to a v1 hierarchy to that hierarchy's
	// mount point; joined controllers (cpu,cpuacct) share one. Empty on a
	// unified host.
	V1 map[string]string
	// Named maps each named v1 hierarchy ("name=systemd"), which binds no
	// controller but in which libcontainer's v1 manager makes every
	// cgroup too, to its mount point.
	Named map[string]string
	// Unified is the cgroup2 mount point: the only hierarchy on a unified
	// host, the one beside the v1 hierarchies in hybrid mode, "" on a
	// legacy host.
	Unified string
	// UnifiedControllers is what the cgroup2 root offers (its
	// cgroup.controllers). On a unified host these are the controllers
	// husk can limit with; in hybrid mode they are the ones no v1
	// hierarchy binds, which a v1 manager cannot use.
	UnifiedControllers []string
	// Swap says whether the memory controller accounts swap
	// (memory.memsw.* on v1, memory.swap.* on v2): a swap limit can only be
	// written where it does.
	Swap bool
	// HugePageSizes are the huge page sizes the kernel has, as the
	// hugetlb controller names them ("2MB", "1GB").
	HugePageSizes []string

	warned warnOnce
}

// Read reads this host's layout from its mount table and cgroupfs. The
// mode is the cgroups library's (a statfs of /sys/fs/cgroup), so husk and
// the libcontainer it drives never disagree on it.
func Read() (*Layout, error) {
	ms, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil, fmt.Errorf("read the cgroup mounts: %w", err)
	}
	mode := Legacy
	switch {
	case cgroups.IsCgroup2UnifiedMode():
		mode = Unified
	case cgroups.IsCgroup2HybridMode():
		mode = Hybrid
	}
	return build(ms, mode, cgroups.HugePageSizes()), nil
}

// Parse reads a layout from a mount table in /proc/self/mountinfo's format
// and the cgroupfs files found at its mount points, which may be a fake
// tree: a test's temporary directories stand for /sys/fs/cgroup.
func Parse(mountTable io.Reader, hugePageSizes []string) (*Layout, error) {
	ms, err := mountinfo.GetMountsFromReader(mountTable, mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil, fmt.Errorf("parse the mount table: %w", err)
	}
	return FromMounts(ms, hugePageSizes), nil
}

// FromMounts is Parse over mounts already read (husk doctor reads the table
// for more than cgroups). The mode follows from the mounts (a cgroup2
// mount and no v1 one is unified), the answer the cgroups library's statfs
// of /sys/fs/cgroup gives on a real host.
func FromMounts(ms []*mountinfo.Info, hugePageSizes []string) *Layout {
	v1, v2 := false, false
	for _, m := range ms {
		v1 = v1 || m.FSType == "cgroup"
		v2 = v2 || m.FSType == "cgroup2"
	}
	mode := Legacy
	switch {
	case v2 && !v1:
		mode = Unified
	case v2:
		mode = Hybrid
	}
	return build(ms, mode, hugePageSizes)
}

func build(ms []*mountinfo.Info, mode Mode, huge []string) *Layout {
	l := &Layout{Mode: mode, V1: map[string]string{}, Named: map[string]string{}, HugePageSizes: huge}
	for _, m := range ms {
		switch m.FSType {
		case "cgroup":
			if mode == Unified {
				continue // a stray v1 mount on a unified host: libcontainer ignores it too
			}
			ctls, name := v1Controllers(m.VFSOptions)
			for _, ctl := range ctls {
				if _, dup := l.V1[ctl]; !dup { // a bind mount of the same hierarchy: the first one wins
					l.V1[ctl] = m.Mountpoint
				}
			}
			if _, dup := l.Named[name]; name != "" && !dup {
				l.Named[name] = m.Mountpoint
			}
		case "cgroup2":
			// A unified host's own hierarchy is at /sys/fs/cgroup; a
			// container may also show its host's elsewhere.
			if l.Unified == "" || m.Mountpoint == "/sys/fs/cgroup" {
				l.Unified = m.Mountpoint
			}
		}
	}
	if l.Unified != "" {
		b, _ := os.ReadFile(filepath.Join(l.Unified, "cgroup.controllers"))
		l.UnifiedControllers = strings.Fields(string(b))
	}
	l.Swap = l.swapAccounted()
	return l
}

// v1Controllers lists the controllers a v1 cgroup mount's super options
// bind ("rw,cpu,cpuacct"), and the name of a named hierarchy
// ("none,name=systemd"), which binds none.
func v1Controllers(opts string) (ctls []string, name string) {
	for _, o := range strings.Split(opts, ",") {
		switch {
		case strings.HasPrefix(o, "name="):
			name = o
		case o == "" || strings.Contains(o, "="):
		case o == "rw" || o == "ro" || o == "none" || o == "xattr" || o == "noprefix" || o == "clone_children" || o == "cpuset_v2_mode" || o == "favordynmods":
		default:
			ctls = append(ctls, o)
		}
	}
	return ctls, name
}

// swapAccounted looks for the swap files of the memory controller. On v1
// the root cgroup has memory.memsw.limit_in_bytes when swap is accounted;
// on v2 the root has no memory.* files, so a child is asked (every unified
// host has one: init.scope, system.slice, or husk's own).
func (l *Layout) swapAccounted() bool {
	if l.Mode != Unified {
		dir, ok := l.V1["memory"]
		return ok && exists(filepath.Join(dir, "memory.memsw.limit_in_bytes"))
	}
	if !l.Has("memory") {
		return false
	}
	ents, _ := os.ReadDir(l.Unified)
	for _, e := range ents {
		if e.IsDir() && exists(filepath.Join(l.Unified, e.Name(), "memory.max")) {
			return exists(filepath.Join(l.Unified, e.Name(), "memory.swap.max"))
		}
	}
	return false
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// Has reports whether a container's limits can be written to controller
// ctl: a v1 hierarchy binds it (legacy and hybrid), or the unified root
// offers it (unified only).
func (l *Layout) Has(ctl string) bool {
	if l.Mode == Unified {
		return slices.Contains(l.UnifiedControllers, ctl)
	}
	_, ok := l.V1[ctl]
	return ok
}

// Dir returns the directory whose subtree holds controller ctl's cgroup
// files: its v1 hierarchy, or the unified root. ok is false where the
// host has no such controller to read.
func (l *Layout) Dir(ctl string) (dir string, ok bool) {
	if l.Mode == Unified {
		return l.Unified, l.Has(ctl)
	}
	dir, ok = l.V1[ctl]
	return dir, ok
}

// Hierarchies lists the mount point of every hierarchy a cgroup of husk's
// may exist in, each once: the v1 ones, named ones included, and in
// hybrid mode the unified one too (libcontainer's v1 manager makes the
// cgroup there as well).
func (l *Layout) Hierarchies() []string {
	seen := map[string]bool{}
	var out []string
	for _, dirs := range []map[string]string{l.V1, l.Named} {
		for _, dir := range dirs {
			if !seen[dir] {
				seen[dir] = true
				out = append(out, dir)
			}
		}
	}
	if l.Unified != "" && !seen[l.Unified] {
		out = append(out, l.Unified)
	}
	sort.Strings(out)
	return out
}

// String says the layout in one line, for the daemon's start log and
// husk doctor, e.g. "v1 (hybrid): blkio cpu cpuacct ... (cpu, cpuacct
// apart); cgroup2 at /sys/fs/cgroup/unified offers hugetlb, unusable by a
// v1 manager; swap accounted".
func (l *Layout) String() string {
	var b strings.Builder
	if l.Mode == Unified {
		offers := strings.Join(l.UnifiedControllers, " ")
		if offers == "" {
			offers = "none"
		}
		fmt.Fprintf(&b, "v2 (unified) at %s, controllers: %s", l.Unified, offers)
	} else {
		ctls := make([]string, 0, len(l.V1))
		for c := range l.V1 {
			ctls = append(ctls, c)
		}
		sort.Strings(ctls)
		if len(ctls) == 0 {
			ctls = []string{"no controllers"}
		}
		fmt.Fprintf(&b, "v1 (%s): %s", l.Mode, strings.Join(ctls, " "))
		cpu, okc := l.V1["cpu"]
		acct, oka := l.V1["cpuacct"]
		switch {
		case okc && oka && cpu == acct:
			b.WriteString(" (cpu, cpuacct joined)")
		case okc && oka:
			b.WriteString(" (cpu, cpuacct apart)")
		}
		if l.Unified != "" {
			offers := strings.Join(l.UnifiedControllers, " ")
			if offers == "" {
				offers = "no controllers"
			}
			fmt.Fprintf(&b, "; cgroup2 at %s offers %s", l.Unified, offers)
			if len(l.UnifiedControllers) > 0 {
				b.WriteString(", unusable by a v1 manager")
			}
		}
	}
	if l.Swap {
		b.WriteString("; swap accounted")
	} else {
		b.WriteString("; swap not accounted")
	}
	return b.String()
}

// Missing lists which of ctls the host cannot limit with, in order.
func (l *Layout) Missing(ctls ...string) []string {
	var out []string
	for _, c := range ctls {
		if !l.Has(c) {
			out = append(out, c)
		}
	}
	return out
}
