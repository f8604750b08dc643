package doctor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// findShims finds husk-shim processes of pods that are not live. A shim is
// husk's when its --socket is in husk's shim socket dir (shim.Launch's
// arguments: --id <pod> --socket <state>/s/<short>.sock ...); shims of
// other husk daemons (another state dir) are not this husk's.
func findShims(cfg Config, proc string, known Known) ([]Leftover, error) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, fmt.Errorf("list processes in %s: %w", proc, err)
	}
	var out []Leftover
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		id, sock, ok := shimArgs(proc, pid)
		if !ok || filepath.Dir(sock) != cfg.shimSockDir() || !isID(id) || known.pod(id) {
			continue
		}
		out = append(out, Leftover{Kind: KindShim, Path: fmt.Sprintf("pid %d", pid), Pod: id, pid: pid,
			Reason: fmt.Sprintf("husk-shim on %s for pod %s, which is not live", sock, short(id))})
	}
	return out, nil
}

// shimArgs reads the pod id and socket of a husk-shim from its command
// line; ok is false for any other process (or one that just exited).
func shimArgs(proc string, pid int) (id, sock string, ok bool) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "cmdline"))
	if err != nil || len(b) == 0 {
		return "", "", false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if filepath.Base(args[0]) != "husk-shim" {
		return "", "", false
	}
	for i := 1; i+1 < len(args); i++ {
		switch args[i] {
		case "--id":
			id = args[i+1]
		case "--socket":
			sock = args[i+1]
		}
	}
	return id, sock, id != "" && sock != ""
}

// killShim stops a leftover shim. There is no daemon left to ask it to shut
// down cleanly, and its containers are killed with their cgroup later, so
// SIGKILL; the pid is checked again first so a reused pid is never hit.
func (h *Host) killShim(cfg Config, l Leftover) (string, error) {
	id, sock, ok := shimArgs(h.Proc, l.pid)
	if !ok || id != l.Pod || filepath.Dir(sock) != cfg.shimSockDir() {
		return "gone already", nil
	}
	if err := h.Kill(l.pid, syscall.SIGKILL); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return "gone already", nil
		}
		return "", fmt.Errorf("kill husk-shim pid %d: %w", l.pid, err)
	}
	// It is init's child now (the shim is detached), which reaps it; wait
	// briefly so the mounts it held are free for the next step.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, _, ok := shimArgs(h.Proc, l.pid); !ok {
			break
		}
	}
	return "killed", nil
}
