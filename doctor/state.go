package doctor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// findCNICache finds attachments libcni cached for pods that are not live
// (<root>/cni/cache/results/<network>-<id>-<ifname>): the cache entry is
// removed only by a successful DEL, so one left means the pod's DEL never
// succeeded, and its lease or portmap rules may be left too. Fix runs the
// DEL it owes.
func findCNICache(cfg Config, known Known) ([]Leftover, error) {
	dir := filepath.Join(cfg.cniCacheDir(), "results")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read CNI cache %s: %w", dir, err)
	}
	var out []Leftover
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var c struct {
			ContainerID string `json:"containerId"`
			Network     string `json:"networkName"`
		}
		if json.Unmarshal(b, &c) != nil || !isID(c.ContainerID) || known.pod(c.ContainerID) {
			continue
		}
		out = append(out, Leftover{Kind: KindCNI, Path: p, Pod: c.ContainerID,
			Reason: fmt.Sprintf("CNI attachment to network %s of pod %s, which is not live: its DEL never succeeded", c.Network, short(c.ContainerID))})
	}
	return out, nil
}

var shortIDRe = regexp.MustCompile(`^([0-9a-f]{12})\.sock$`)

// findDirs finds state of pods that are not live: pod dirs (pods/<id>,
// with the record, logs and pod files), libcontainer state dirs
// (<state>/oci/<id>, named by pod or container id) and shim sockets
// (<state>/s/<short id>.sock).
func findDirs(cfg Config, recs map[string]*record, known Known, now time.Time) ([]Leftover, error) {
	var out []Leftover
	for id, r := range recs {
		if known.pod(id) || r.recent(now) {
			continue
		}
		why := fmt.Sprintf("record of pod %s (state %s) that the runtime does not list", short(id), r.Pod.State)
		switch {
		case r.Missing:
			why = fmt.Sprintf("dir of pod %s with no record in it", short(id))
		case r.Err != nil:
			why = fmt.Sprintf("dir of pod %s with an unreadable record: %v", short(id), r.Err)
		}
		out = append(out, Leftover{Kind: KindDir, Path: filepath.Join(cfg.podsDir(), id), Pod: id, Reason: why})
	}
	ents, err := os.ReadDir(cfg.ociDir())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", cfg.ociDir(), err)
	}
	for _, e := range ents {
		id := e.Name()
		if !isID(id) || known.pod(id) || known.container(id) {
			continue
		}
		if r, ok := recs[id]; ok && r.recent(now) {
			continue
		}
		out = append(out, Leftover{Kind: KindDir, Path: filepath.Join(cfg.ociDir(), id), Pod: ownerPod(id, recs),
			Reason: fmt.Sprintf("libcontainer state of %s, which is no live pod or container", short(id))})
	}
	socks, err := os.ReadDir(cfg.shimSockDir())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", cfg.shimSockDir(), err)
	}
	for _, e := range socks {
		m := shortIDRe.FindStringSubmatch(e.Name())
		if m == nil || knownPrefix(known, recs, m[1], now) {
			continue
		}
		out = append(out, Leftover{Kind: KindDir, Path: filepath.Join(cfg.shimSockDir(), e.Name()),
			Pod: fullID(m[1], recs), Reason: fmt.Sprintf("shim socket of pod %s, which is not live", m[1])})
	}
	return out, nil
}

// knownPrefix reports whether a live (or in-flight) pod's id starts with
// the short id a shim socket is named by.
func knownPrefix(known Known, recs map[string]*record, prefix string, now time.Time) bool {
	for id := range known.Pods {
		if strings.HasPrefix(id, prefix) {
			return true
		}
	}
	for id, r := range recs {
		if strings.HasPrefix(id, prefix) && r.recent(now) {
			return true
		}
	}
	return false
}

func fullID(prefix string, recs map[string]*record) string {
	for id := range recs {
		if strings.HasPrefix(id, prefix) {
			return id
		}
	}
	return ""
}

// ownerPod returns the pod an id belongs to: itself when it is a pod, or
// the pod whose record dir holds that container.
func ownerPod(id string, recs map[string]*record) string {
	if _, ok := recs[id]; ok {
		return id
	}
	for pid, r := range recs {
		for _, c := range r.Containers {
			if c == id {
				return pid
			}
		}
	}
	return ""
}

// removeDir removes a leftover dir or socket, never across a mount: a
// mount still under it (one that could not be undone, or made since the
// audit) would have its contents deleted by RemoveAll.
func (h *Host) removeDir(l Leftover) (string, error) {
	ms, err := h.mounts()
	if err != nil {
		return "", err
	}
	if below := mountsBelow(ms, l.Path); len(below) > 0 {
		return "", fmt.Errorf("%s: still has mounts %v; left alone", l.Path, below)
	}
	if _, err := os.Lstat(l.Path); errors.Is(err, fs.ErrNotExist) {
		return "gone already", nil
	}
	if err := os.RemoveAll(l.Path); err != nil {
		return "", fmt.Errorf("remove %s: %w", l.Path, err)
	}
	return "removed", nil
}
