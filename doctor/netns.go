package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/moby/sys/mountinfo"
)

// findNetns finds network namespaces pinned under husk's netns dir
// (network.Manager.NetnsPath: <state>/netns/<pod-id>) for pods that are not
// live, and plain files left there (a pin whose mount is gone, e.g. after
// a reboot where /run is on disk). A netns pinned anywhere else, such as
// `ip netns`' /run/netns, is never husk's.
func findNetns(cfg Config, ms []*mountinfo.Info, known Known) ([]Leftover, error) {
	ents, err := os.ReadDir(cfg.netnsDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read netns dir %s: %w", cfg.netnsDir(), err)
	}
	var out []Leftover
	for _, e := range ents {
		id := e.Name()
		if !isID(id) || known.pod(id) {
			continue
		}
		p := filepath.Join(cfg.netnsDir(), id)
		why := "pinned netns"
		if !mounted(ms, p) {
			why = "netns pin file (not mounted)"
		}
		out = append(out, Leftover{Kind: KindNetns, Path: p, Pod: id,
			Reason: fmt.Sprintf("%s of pod %s, which is not live", why, short(id))})
	}
	return out, nil
}

// removeNetns unpins a netns and removes its file, as network.RemoveNetns
// does; the kernel frees the namespace (and the veth ends in it) once
// nothing holds it.
func (h *Host) removeNetns(path string) (string, error) {
	was, err := h.unmountAll(path)
	if err != nil {
		return "", err
	}
	err = os.Remove(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !was:
		return "gone already", nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("remove netns pin %s: %w", path, err)
	}
	if was {
		return "unmounted and removed", nil
	}
	return "removed", nil
}
