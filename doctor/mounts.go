package doctor

import (
	"fmt"
	"os"
	"strings"

	"github.com/moby/sys/mountinfo"
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

// unmountAll takes down every mount at path (stacked ones too: Host.Unmount
// is mount.Unmount) and says whether the mount table had one there, so
// the report can tell "unmounted" from "gone already".
func (h *Host) unmountAll(path string) (was bool, err error) {
	ms, err := h.mounts()
	if err != nil {
		return false, err
	}
	if !mounted(ms, path) {
		return false, nil
	}
	if err := h.Unmount(path); err != nil {
		return true, fmt.Errorf("unmount %s: %w", path, err)
	}
	return true, nil
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
