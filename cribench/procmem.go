package cribench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Memory is a process's memory as /proc/PID/smaps_rollup reports it, in KiB.
// PSS charges each shared page to its sharers in equal parts, so the PSS of
// N shims running one binary adds up to what the machine pays for them.
type Memory struct {
	RSS     float64 `json:"rssKiB"`
	PSS     float64 `json:"pssKiB"`
	Private float64 `json:"privateKiB"`
}

// ProcMemory reads /proc/PID/smaps_rollup.
func ProcMemory(pid int) (Memory, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "smaps_rollup"))
	if err != nil {
		return Memory{}, fmt.Errorf("memory of pid %d: %w", pid, err)
	}
	return parseSmapsRollup(data), nil
}

func parseSmapsRollup(data []byte) Memory {
	var m Memory
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "Rss:":
			m.RSS = v
		case "Pss:":
			m.PSS = v
		case "Private_Clean:", "Private_Dirty:":
			m.Private += v
		}
	}
	return m
}

// ParentPid returns the parent of pid, from /proc/PID/stat.
func ParentPid(pid int) (int, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, fmt.Errorf("parent of pid %d: %w", pid, err)
	}
	return parseStatPpid(data)
}

// parseStatPpid takes the ppid from a /proc/PID/stat line. The command
// name in parentheses may hold spaces and parentheses itself: the fields
// start after its last ')'.
func parseStatPpid(data []byte) (int, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat: no ')'")
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 2 {
		return 0, errors.New("malformed /proc stat: too few fields")
	}
	return strconv.Atoi(f[1]) // state, then ppid
}

// Comm returns a process's command name ("" if it is gone).
func Comm(pid int) string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	return strings.TrimSpace(string(b))
}

// ListenerPid finds the process listening on a unix socket path: the
// socket's inode from /proc/net/unix, then the process holding that inode
// among its file descriptors (root can read every process's).
func ListenerPid(path string) (int, error) {
	data, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return 0, fmt.Errorf("listener of %s: %w", path, err)
	}
	inode := listeningInode(data, path)
	if inode == "" {
		return 0, fmt.Errorf("listener of %s: no listening socket at that path in /proc/net/unix", path)
	}
	target := "socket:[" + inode + "]"
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("listener of %s: %w", path, err)
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		fds, err := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name())); err == nil && l == target {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("listener of %s: no process holds socket inode %s", path, inode)
}

// listeningInode returns the inode of the listening socket bound to path
// in /proc/net/unix ("Num RefCount Protocol Flags Type St Inode Path";
// flag 0x10000, __SO_ACCEPTCON, marks a listener).
func listeningInode(data []byte, path string) string {
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || f[7] != path {
			continue
		}
		flags, err := strconv.ParseUint(f[3], 16, 32)
		if err == nil && flags&0x10000 != 0 {
			return f[6]
		}
	}
	return ""
}
