package doctor

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// mounts reads the host's mount table.
func (h *Host) mounts() ([]*mountinfo.Info, error) {
	f, err := os.Open(h.MountInfo)
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	defer f.Close()
	ms, err := mountinfo.GetMountsFromReader(f, nil)
	if err != nil {
		return nil, fmt.Errorf("parse mount table %s: %w", h.MountInfo, err)
	}
	return ms, nil
}

// under reports whether p is below dir (not dir itself).
func under(p, dir string) bool {
	return strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// podOf returns the first path element of p below dir: the pod id for a
// path under pods/.
func podOf(p, dir string) string {
	rest := strings.TrimPrefix(p, strings.TrimSuffix(dir, "/")+"/")
	id, _, _ := strings.Cut(rest, "/")
	return id
}

// findMounts finds mounts under pods/<id>/ of pods that are not live: the
// pod's /dev/shm tmpfs, the infra's and containers' rootfs overlays, the
// pinned user namespace. Netns pins have their own check (netns.go).
func findMounts(cfg Config, ms []*mountinfo.Info, known Known) []Leftover {
	var out []Leftover
	for _, m := range ms {
		if !under(m.Mountpoint, cfg.podsDir()) {
			continue
		}
		id := podOf(m.Mountpoint, cfg.podsDir())
		if !isID(id) || known.pod(id) {
			continue
		}
		out = append(out, Leftover{Kind: KindMount, Path: m.Mountpoint, Pod: id,
			Reason: fmt.Sprintf("%s mount of pod %s, which is not live", m.FSType, short(id))})
	}
	return out
}

// mounted reports whether path is a mount point in ms.
func mounted(ms []*mountinfo.Info, path string) bool {
	for _, m := range ms {
		if m.Mountpoint == path {
			return true
		}
	}
	return false
}

// unmountAll detaches every mount at path (mounts may be stacked).
// MNT_DETACH: a process still holding a file open there must not stop the
// cleanup; the kernel frees it when the last user leaves.
func (h *Host) unmountAll(path string) (n int, err error) {
	for range 16 {
		err := h.Unmount(path)
		if err == nil {
			n++
			continue
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return n, nil // no (more) mount there
		}
		return n, fmt.Errorf("unmount %s: %w", path, err)
	}
	return n, fmt.Errorf("unmount %s: still mounted after 16 unmounts", path)
}

// mountsBelow lists the mount points at or under dir.
func mountsBelow(ms []*mountinfo.Info, dir string) []string {
	var out []string
	for _, m := range ms {
		if m.Mountpoint == dir || under(m.Mountpoint, dir) {
			out = append(out, m.Mountpoint)
		}
	}
	return out
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
