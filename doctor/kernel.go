package doctor

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/husk-runtime/husk/hostcgroup"
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
// set with: without cpu or memory kubelet's requests and limits mean
// nothing; without the optional ones husk drops those limits (with a
// warning in its log) rather than failing the start.
var (
	cgroupControllers = []string{"cpu", "memory"}
	cgroupOptional    = []string{"cpuset", "pids", "hugetlb"}
)

// cgroupCheck asks the same layout the daemon decides with
// (hostcgroup), so doctor and the daemon never disagree about a
// controller: a hybrid host whose hugetlb is on the unified mount alone
// has no hugetlb for either.
func cgroupCheck(h *Host) Check {
	c := Check{Name: "kernel/cgroups"}
	ms, err := h.mounts()
	if err != nil {
		c.Status, c.Reason = Fail, err.Error()
		return c
	}
	l := hostcgroup.FromMounts(ms, nil)
	if l.Unified == "" && len(l.V1) == 0 && len(l.Named) == 0 {
		c.Status, c.Reason = Fail, "no cgroup filesystem is mounted"
		return c
	}
	c.Status, c.Reason = OK, "cgroup "+l.String()
	if opt := l.Missing(cgroupOptional...); len(opt) > 0 {
		c.Status, c.Reason = Warn, c.Reason+"; no "+strings.Join(opt, " ")+" (pods get no such limits)"
	}
	if missing := l.Missing(cgroupControllers...); len(missing) > 0 {
		c.Status, c.Reason = Fail, c.Reason+"; missing: "+strings.Join(missing, " ")
	}
	return c
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
