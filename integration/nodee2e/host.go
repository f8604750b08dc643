package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/husk-runtime/husk/hostcgroup"
	"golang.org/x/sys/unix"
)

// The suite's kubelet works on the host's own paths whatever its flags say
// (its root dir /var/lib/kubelet is a constant of the suite), sets
// host-wide sysctls (protectKernelDefaults is false) and makes cgroups at
// the top of every hierarchy. hostState is what was there before, so the
// run leaves the machine as it found it, also when it fails.
type hostState struct {
	sysctls map[string]string
	absent  []string        // paths that did not exist
	cgroups map[string]bool // top-level cgroup dirs that existed, per hierarchy
	chains  map[string]bool // iptables chains that existed
}

var kubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// kubeletPaths are the host paths the suite and its kubelet create.
var kubeletPaths = []string{
	"/var/lib/kubelet", "/var/log/containers", "/var/log/pods", "/run/mount",
	"/etc/kubernetes", "/var/lib/kubelet/device-plugins",
}

func saveHost() *hostState {
	h := &hostState{sysctls: map[string]string{}, cgroups: map[string]bool{}, chains: iptablesChains()}
	for _, k := range kubeletSysctls {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil {
			h.sysctls[k] = strings.TrimSpace(string(b))
		}
	}
	for _, p := range kubeletPaths {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			h.absent = append(h.absent, p)
		}
	}
	for _, dir := range topCgroups() {
		h.cgroups[dir] = true
	}
	return h
}

func (h *hostState) restore() {
	for k, v := range h.sysctls {
		b, _ := os.ReadFile("/proc/sys/" + k)
		if now := strings.TrimSpace(string(b)); now != v {
			fmt.Printf("restoring sysctl %s: %s -> %s\n", k, now, v)
			if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "restore sysctl", k, err)
			}
		}
	}
	// kubelet's mounts (pod volumes, its root dir bind-mounted onto
	// itself) go before the dirs they are in.
	for _, p := range h.absent {
		unmountUnder(p)
	}
	for i := len(h.absent) - 1; i >= 0; i-- {
		if err := os.RemoveAll(h.absent[i]); err != nil {
			fmt.Fprintln(os.Stderr, "remove", h.absent[i], err)
		}
	}
	for _, dir := range topCgroups() {
		if !h.cgroups[dir] {
			// kubelet moves the host's own processes into its
			// systemCgroups (/system) and the runtime's into
			// --runtime-cgroups: back to the hierarchy's root with them
			// before the cgroup goes (the pods' are gone by now).
			moveProcsToRoot(dir)
			removeCgroupTree(dir)
		}
	}
	// kubelet's chains (KUBE-FIREWALL, jumped to from INPUT and OUTPUT):
	// the jumps go first, or the chain cannot be deleted.
	for c := range iptablesChains() {
		if h.chains[c] {
			continue
		}
		table, chain, _ := strings.Cut(c, "/")
		b, _ := exec.Command("iptables-save", "-t", table).Output()
		for _, l := range strings.Split(string(b), "\n") {
			if rule, ok := strings.CutPrefix(l, "-A "); ok && strings.HasSuffix(l, " -j "+chain) {
				_ = exec.Command("iptables", append([]string{"-t", table, "-D"}, strings.Fields(rule)...)...).Run()
			}
		}
		_ = exec.Command("iptables", "-t", table, "-F", chain).Run()
		_ = exec.Command("iptables", "-t", table, "-X", chain).Run()
	}
}

// topCgroups lists the directories at the top of every cgroup hierarchy.
func topCgroups() []string {
	l, err := hostcgroup.Read()
	if err != nil {
		return nil
	}
	var out []string
	for _, root := range l.Hierarchies() {
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			if e.IsDir() {
				out = append(out, filepath.Join(root, e.Name()))
			}
		}
	}
	return out
}

// moveProcsToRoot moves every process of the cgroup tree at dir into the
// root cgroup of its hierarchy (dir's parent).
func moveProcsToRoot(dir string) {
	root := filepath.Dir(dir)
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, pid := range strings.Fields(string(b)) {
			if err := os.WriteFile(filepath.Join(root, "cgroup.procs"), []byte(pid), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "move pid", pid, "out of", filepath.Dir(p), err)
			}
		}
		return nil
	})
}

// removeCgroupTree removes a cgroup and its children, deepest first (the
// processes in them are gone with their pods).
func removeCgroupTree(dir string) {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
			fmt.Fprintln(os.Stderr, "remove cgroup", d, err)
		}
	}
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	var mps []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && (f[1] == dir || strings.HasPrefix(f[1], dir+"/")) {
			mps = append(mps, f[1])
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	for _, mp := range mps {
		_ = unix.Unmount(mp, unix.MNT_DETACH)
	}
}

// iptablesChains lists the chains of the filter and nat tables as
// "table/chain".
func iptablesChains() map[string]bool {
	out := map[string]bool{}
	for _, table := range []string{"filter", "nat", "mangle"} {
		b, err := exec.Command("iptables-save", "-t", table).Output()
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if name, ok := strings.CutPrefix(l, ":"); ok {
				if f := strings.Fields(name); len(f) > 0 {
					out[table+"/"+f[0]] = true
				}
			}
		}
	}
	return out
}
