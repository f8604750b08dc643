package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// readPodNetwork reads the pod's interfaces from /proc/<infra pid>/net/dev,
// which shows the network namespace of that process: no setns needed. The
// infra pid is checked to still be in the pod's netns first, so a recycled
// pid never reports another namespace's traffic.
func readPodNetwork(pid int, netns string) (*NetworkUsage, error) {
	proc := "/proc/" + strconv.Itoa(pid)
	if netns != "" {
		var a, b unix.Stat_t
		if err := unix.Stat(proc+"/ns/net", &a); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return nil, nil // infra just exited
			}
			return nil, fmt.Errorf("stat %s/ns/net: %w", proc, err)
		}
		if err := unix.Stat(netns, &b); err != nil {
			return nil, fmt.Errorf("stat netns %s: %w", netns, err)
		}
		if a.Dev != b.Dev || a.Ino != b.Ino {
			return nil, nil
		}
	}
	b, err := readFileCopy(proc + "/net/dev")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ifs, err := parseNetDev(b)
	if err != nil {
		return nil, fmt.Errorf("parse %s/net/dev: %w", proc, err)
	}
	n := &NetworkUsage{At: time.Now()}
	for i := range ifs {
		switch ifs[i].Name {
		case "lo":
		case DefaultInterface:
			n.Default = &ifs[i]
		default:
			n.Interfaces = append(n.Interfaces, ifs[i])
		}
	}
	return n, nil
}

// parseNetDev parses /proc/net/dev: two header lines, then
// "name: rx bytes packets errs drop fifo frame compressed multicast
// tx bytes packets errs drop fifo colls carrier compressed".
func parseNetDev(b []byte) ([]InterfaceUsage, error) {
	var out []InterfaceUsage
	for i, line := range strings.Split(string(b), "\n") {
		if i < 2 || strings.TrimSpace(line) == "" {
			continue
		}
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %q has no interface name", line)
		}
		f := strings.Fields(rest)
		if len(f) < 16 {
			return nil, fmt.Errorf("line %q has %d fields, want 16", line, len(f))
		}
		var v [16]uint64
		for j := range v {
			n, err := strconv.ParseUint(f[j], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("line %q: %w", line, err)
			}
			v[j] = n
		}
		out = append(out, InterfaceUsage{Name: strings.TrimSpace(name),
			RxBytes: v[0], RxPackets: v[1], RxErrors: v[2], RxDropped: v[3],
			TxBytes: v[8], TxPackets: v[9], TxErrors: v[10], TxDropped: v[11]})
	}
	return out, nil
}
