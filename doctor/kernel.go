package doctor

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// KernelChecks checks the kernel features husk uses: overlayfs for rootfs,
// the cgroup controllers pods are limited with, the namespaces a pod is
// made of, user namespaces (pods with hostUsers: false), seccomp
// (RuntimeDefault) and, for information, AppArmor.
func KernelChecks(h *Host) []Check {
	var out []Check
	out = append(out, overlayCheck(h))
	out = append(out, cgroupCheck(h))
	out = append(out, namespaceCheck(h))
	out = append(out, usernsCheck(h))
	out = append(out, seccompCheck(h))
	out = append(out, apparmorCheck(h))
	return out
}

func overlayCheck(h *Host) Check {
	c := Check{Name: "kernel/overlayfs"}
	p := filepath.Join(h.Proc, "filesystems")
	b, err := os.ReadFile(p)
	if err != nil {
		c.Status, c.Reason = Fail, fmt.Sprintf("read %s: %v", p, err)
		return c
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[len(f)-1] == "overlay" {
			c.Status, c.Reason = OK, "overlay is in "+p
			return c
		}
	}
	// The module may still load on the first mount.
	c.Status, c.Reason = Warn, "overlay is not in "+p+" (not loaded: `modprobe overlay`); container rootfs need it"
	return c
}

// cgroupControllers are the controllers pod and container resources are
// set with; hugetlb only matters to pods that ask for huge pages.
var cgroupControllers = []string{"cpu", "memory", "pids", "cpuset"}

func cgroupCheck(h *Host) Check {
	c := Check{Name: "kernel/cgroups"}
	ms, err := h.mounts()
	if err != nil {
		c.Status, c.Reason = Fail, err.Error()
		return c
	}
	have, version := controllers(ms)
	if version == "" {
		c.Status, c.Reason = Fail, "no cgroup filesystem is mounted"
		return c
	}
	var missing []string
	for _, ctl := range cgroupControllers {
		if !have[ctl] {
			missing = append(missing, ctl)
		}
	}
	names := make([]string, 0, len(have))
	for n := range have {
		names = append(names, n)
	}
	sort.Strings(names)
	c.Status, c.Reason = OK, fmt.Sprintf("cgroup %s; controllers: %s", version, strings.Join(names, " "))
	if !have["hugetlb"] {
		c.Status, c.Reason = Warn, c.Reason+"; no hugetlb (pods asking for huge pages get no limit)"
	}
	if len(missing) > 0 {
		c.Status, c.Reason = Fail, c.Reason+"; missing: "+strings.Join(missing, " ")
	}
	return c
}

// controllers lists the controllers available to husk: on v1 (and hybrid)
// hosts the v1 hierarchies' mount options name them; on a pure v2 host the
// root's cgroup.controllers does.
func controllers(ms []*mountinfo.Info) (map[string]bool, string) {
	have := map[string]bool{}
	v1, v2 := false, ""
	for _, m := range ms {
		switch m.FSType {
		case "cgroup":
			v1 = true
			for _, o := range strings.Split(m.VFSOptions, ",") {
				if !strings.Contains(o, "=") && o != "rw" && o != "ro" && o != "xattr" && o != "noprefix" && o != "clone_children" && o != "cpuset_v2_mode" {
					have[o] = true
				}
			}
		case "cgroup2":
			v2 = m.Mountpoint
		}
	}
	switch {
	case v1 && v2 != "":
		return have, "v1 (hybrid, v2 at " + v2 + ")"
	case v1:
		return have, "v1"
	case v2 != "":
		b, _ := os.ReadFile(filepath.Join(v2, "cgroup.controllers"))
		for _, f := range strings.Fields(string(b)) {
			have[f] = true
		}
		return have, "v2"
	}
	return have, ""
}

func namespaceCheck(h *Host) Check {
	c := Check{Name: "kernel/namespaces"}
	var missing, optional []string
	for _, ns := range []string{"mnt", "uts", "ipc", "pid", "net", "user", "cgroup"} {
		if _, err := os.Lstat(filepath.Join(h.Proc, "self", "ns", ns)); err != nil {
			if ns == "user" || ns == "cgroup" {
				optional = append(optional, ns)
			} else {
				missing = append(missing, ns)
			}
		}
	}
	switch {
	case len(missing) > 0:
		c.Status, c.Reason = Fail, "missing "+strings.Join(append(missing, optional...), " ")+" namespaces"
	case len(optional) > 0:
		c.Status, c.Reason = Warn, "no "+strings.Join(optional, " ")+" namespaces"
	default:
		c.Status, c.Reason = OK, "mnt uts ipc pid net user cgroup"
	}
	return c
}

func usernsCheck(h *Host) Check {
	c := Check{Name: "kernel/userns"}
	p := filepath.Join(h.Proc, "sys", "user", "max_user_namespaces")
	b, err := os.ReadFile(p)
	if err != nil {
		c.Status, c.Reason = Warn, fmt.Sprintf("read %s: %v; pods with hostUsers: false may fail", p, err)
		return c
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	switch {
	case err != nil:
		c.Status, c.Reason = Warn, fmt.Sprintf("%s: %q is no number", p, strings.TrimSpace(string(b)))
	case n == 0:
		c.Status, c.Reason = Warn, "user.max_user_namespaces is 0: pods with hostUsers: false fail"
	default:
		c.Status, c.Reason = OK, fmt.Sprintf("user.max_user_namespaces = %d", n)
	}
	return c
}

// seccompCheck reads the Seccomp field of /proc/self/status, present
// only when the kernel is built with CONFIG_SECCOMP.
func seccompCheck(h *Host) Check {
	c := Check{Name: "kernel/seccomp"}
	p := filepath.Join(h.Proc, "self", "status")
	f, err := os.Open(p)
	if err != nil {
		c.Status, c.Reason = Fail, fmt.Sprintf("read %s: %v", p, err)
		return c
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "Seccomp:"); ok {
			c.Status, c.Reason = OK, "supported (Seccomp: "+strings.TrimSpace(v)+" in "+p+")"
			return c
		}
	}
	c.Status, c.Reason = Fail, "no Seccomp field in "+p+" (kernel without CONFIG_SECCOMP): RuntimeDefault profiles cannot be applied"
	return c
}

func apparmorCheck(h *Host) Check {
	c := Check{Name: "kernel/apparmor", Status: Info}
	b, err := os.ReadFile(filepath.Join(h.Sys, "module", "apparmor", "parameters", "enabled"))
	if err == nil && strings.TrimSpace(string(b)) == "Y" {
		c.Reason = "enabled"
	} else {
		c.Reason = "not enabled (AppArmor profiles in pod specs are not applied)"
	}
	return c
}
