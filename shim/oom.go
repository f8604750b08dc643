package shim

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// oomKilled reports whether the kernel's OOM killer fired in the container's
// memory cgroup. It reads the counter that both cgroup versions keep:
// "oom_kill N" in memory.oom_control (v1) or memory.events (v2).
func oomKilled(cgroupPath string) bool {
	if cgroupPath == "" {
		return false
	}
	for _, f := range []string{
		filepath.Join("/sys/fs/cgroup/memory", cgroupPath, "memory.oom_control"),
		filepath.Join("/sys/fs/cgroup", cgroupPath, "memory.events"),
	} {
		if n, ok := counter(f, "oom_kill"); ok {
			return n > 0
		}
	}
	return false
}

func counter(path, key string) (uint64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
