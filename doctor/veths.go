package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// pinnedNsIDs maps the nsid of every netns pinned in husk's netns dir to
// the pod id it is pinned for.
func pinnedNsIDs(cfg Config, links Links) map[int]string {
	out := map[int]string{}
	ents, _ := os.ReadDir(cfg.netnsDir())
	for _, e := range ents {
		if !isID(e.Name()) {
			continue
		}
		id, err := links.NsID(filepath.Join(cfg.netnsDir(), e.Name()))
		if err == nil && id >= 0 {
			out[id] = e.Name()
		}
	}
	return out
}

// findVeths finds the host ends of veths on husk's bridge (cni.bridge,
// the one husk's default network makes) whose other end is not in the
// netns of a live pod: in the netns of a pod that is not live, or in a
// netns husk has no pin for. Interfaces on any other bridge (docker0, cni0,
// another daemon's) are never looked at, nor ports whose peer is in the
// host netns (no pod's veth).
func findVeths(cfg Config, links Links, known Known, nsids map[int]string) ([]Leftover, error) {
	if cfg.Bridge == "" {
		return nil, nil
	}
	ports, err := links.Ports(cfg.Bridge)
	if err != nil {
		return nil, fmt.Errorf("list interfaces on bridge %s: %w", cfg.Bridge, err)
	}
	var out []Leftover
	for _, p := range ports {
		if p.PeerNsID < 0 {
			continue
		}
		pod, pinned := nsids[p.PeerNsID]
		switch {
		case pinned && known.pod(pod):
			continue
		case pinned:
			out = append(out, Leftover{Kind: KindVeth, Path: p.Name, Pod: pod,
				Reason: fmt.Sprintf("on bridge %s, peer in the netns of pod %s, which is not live", cfg.Bridge, short(pod))})
		default:
			out = append(out, Leftover{Kind: KindVeth, Path: p.Name,
				Reason: fmt.Sprintf("on bridge %s, peer in a netns (nsid %d) husk has no pin for", cfg.Bridge, p.PeerNsID)})
		}
	}
	return out, nil
}

// removeVeth deletes a leftover veth (its peer goes with it), after
// checking it is still on husk's bridge with its peer outside every live
// pod's netns: the name may have been reused since the audit.
func (h *Host) removeVeth(cfg Config, l Leftover, known Known) (string, error) {
	ports, err := h.Links.Ports(cfg.Bridge)
	if err != nil {
		return "", fmt.Errorf("list interfaces on bridge %s: %w", cfg.Bridge, err)
	}
	nsids := pinnedNsIDs(cfg, h.Links)
	for _, p := range ports {
		if p.Name != l.Path {
			continue
		}
		if pod, ok := nsids[p.PeerNsID]; p.PeerNsID < 0 || (ok && known.pod(pod)) {
			return "", fmt.Errorf("veth %s: now belongs to a live pod or the host; left alone", l.Path)
		}
		if err := h.Links.Delete(l.Path); err != nil {
			if !h.Links.Exists(l.Path) {
				return "gone already", nil
			}
			return "", fmt.Errorf("delete veth %s: %w", l.Path, err)
		}
		return "deleted", nil
	}
	if h.Links.Exists(l.Path) {
		return "", fmt.Errorf("veth %s: no longer on bridge %s; left alone", l.Path, cfg.Bridge)
	}
	// The audit saw it a moment ago: the pod's CNI DEL (bridge deletes
	// the veth from inside the netns) took it.
	if l.Pod != "" {
		return "removed by the pod's CNI DEL", nil
	}
	return "gone already", nil
}

// findLeases finds host-local IP leases in husk's IPAM dir (<root>/cni/
// networks/<network>/<ip>, the dataDir husk's default network sets) whose
// container id (husk passes the pod id) is not a live pod.
func findLeases(cfg Config, known Known) ([]Leftover, error) {
	nets, err := os.ReadDir(cfg.ipamDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read IPAM dir %s: %w", cfg.ipamDir(), err)
	}
	var out []Leftover
	for _, n := range nets {
		if !n.IsDir() {
			continue
		}
		dir := filepath.Join(cfg.ipamDir(), n.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("read IPAM dir %s: %w", dir, err)
		}
		for _, f := range files {
			if f.IsDir() || f.Name() == "lock" || strings.HasPrefix(f.Name(), "last_reserved_ip.") {
				continue
			}
			p := filepath.Join(dir, f.Name())
			id := leaseOwner(p)
			if !isID(id) || known.pod(id) {
				continue
			}
			out = append(out, Leftover{Kind: KindLease, Path: p, Pod: id,
				Reason: fmt.Sprintf("IP %s on network %s leased to pod %s, which is not live", f.Name(), n.Name(), short(id))})
		}
	}
	return out, nil
}

// leaseOwner reads the container id of a host-local lease file: its first
// line (host-local writes "<id>\r\n<ifname>").
func leaseOwner(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	first, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(first)
}

// removeLease releases a lease CNI DEL did not, under host-local's own lock
// (flock on <dir>/lock), after reading again that it still names the pod.
func removeLease(l Leftover) (string, error) {
	unlock, err := lockIPAM(filepath.Dir(l.Path))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(l.Path); errors.Is(err, fs.ErrNotExist) {
		return "gone already (released by CNI DEL)", nil
	}
	if leaseOwner(l.Path) != l.Pod {
		return "", fmt.Errorf("lease %s: now names another container; left alone", l.Path)
	}
	if err := os.Remove(l.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("remove lease %s: %w", l.Path, err)
	}
	return "removed", nil
}
