package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
)

// Audit is what the leftover audit found.
type Audit struct {
	Known     Known
	Leftovers []Leftover
	// Foreign are /husk/<id> cgroups of pods this husk does not know and
	// whose id nothing under its root and state names: likely another husk
	// daemon's on the same node, so never removed.
	Foreign []string
}

// RunAudit lists the live pods, scans for husk's things that belong to
// none of them, and lists the live pods again: a pod made while the scan
// ran is then known, and none of its parts is taken for a leftover.
func RunAudit(ctx context.Context, cfg Config, h *Host, list Lister) (*Audit, error) {
	known, recs, err := livePods(ctx, cfg, h, list)
	if err != nil {
		return nil, err
	}
	ms, err := h.mounts()
	if err != nil {
		return nil, err
	}

	var all []Leftover
	var errs []error
	collect := func(ls []Leftover, err error) {
		all = append(all, ls...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	collect(findShims(cfg, h.Proc, known))
	collect(findMounts(cfg, ms, known), nil)
	collect(findNetns(cfg, ms, known))
	collect(findCNICache(cfg, known))
	collect(findLeases(cfg, known))
	collect(findVeths(cfg, h.Links, known, pinnedNsIDs(cfg, h.Links)))
	collect(findDirs(cfg, recs, known, h.Now()))

	// Ids this husk's own dirs name: a /husk/<id> cgroup with one of
	// them is provably this husk's.
	traced := map[string]bool{}
	for id := range recs {
		traced[id] = true
	}
	for _, l := range all {
		if l.Pod != "" {
			traced[l.Pod] = true
		}
	}
	stale := map[string]*record{}
	for id, r := range recs {
		if !known.pod(id) {
			stale[id] = r
		}
	}
	cg, foreign := findCgroups(ms, known, traced, stale)
	all = append(all, cg...)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	again, err := list(ctx)
	if err != nil {
		return nil, err
	}
	known.merge(again)
	a := &Audit{Known: known, Foreign: foreign}
	for _, l := range all {
		if l.Pod == "" || !known.pod(l.Pod) {
			a.Leftovers = append(a.Leftovers, l)
		}
	}
	sortLeftovers(a.Leftovers)
	return a, nil
}

// livePods lists the live pods, with the records on disk, and counts pods
// being made right now as live too: the daemon lists a pod only once it is
// ready, but its record, netns and mounts exist from the first steps of
// RunPodSandbox.
func livePods(ctx context.Context, cfg Config, h *Host, list Lister) (Known, map[string]*record, error) {
	known, err := list(ctx)
	if err != nil {
		return Known{}, nil, err
	}
	recs, err := readRecords(cfg)
	if err != nil {
		return Known{}, nil, err
	}
	in := Known{Pods: map[string]bool{}, Containers: map[string]bool{}}
	for id, r := range recs {
		if r.recent(h.Now()) {
			in.Pods[id] = true
		}
	}
	known.merge(in)
	return known, recs, nil
}

func sortLeftovers(ls []Leftover) {
	sort.SliceStable(ls, func(i, j int) bool {
		if ls[i].Kind != ls[j].Kind {
			return kindOrder[ls[i].Kind] < kindOrder[ls[j].Kind]
		}
		if ls[i].Kind == KindMount {
			// Deepest first: a mount inside another is undone first.
			if di, dj := strings.Count(ls[i].Path, "/"), strings.Count(ls[j].Path, "/"); di != dj {
				return di > dj
			}
		}
		return ls[i].Path < ls[j].Path
	})
}

// Fix removes the leftovers of an audit, in kindOrder: kill the shim,
// unmount, CNI DEL (or release the lease and delete the veth), unpin the
// netns, remove the cgroup, remove the dirs. The live pods are listed once
// more first, and a leftover whose pod has become live is left alone.
// Every step tolerates what is already gone, so Fix is idempotent.
func Fix(ctx context.Context, cfg Config, h *Host, list Lister, ls []Leftover) ([]Action, error) {
	known, _, err := livePods(ctx, cfg, h, list)
	if err != nil {
		return nil, err
	}

	ls = append([]Leftover(nil), ls...)
	sortLeftovers(ls)
	var acts []Action
	act := func(l Leftover) func(string, error) {
		return func(done string, err error) {
			a := Action{Kind: l.Kind, Path: l.Path, Pod: l.Pod, Done: done}
			if err != nil {
				a.Done, a.Error = "failed", err.Error()
			}
			acts = append(acts, a)
		}
	}

	// The pods that owe a CNI DEL, with their netns while it is still
	// pinned: bridge deletes the veth from inside it.
	owes := map[string]string{}
	for _, l := range ls {
		switch l.Kind {
		case KindCNI, KindLease, KindVeth, KindNetns:
			if l.Pod != "" && !known.pod(l.Pod) {
				if _, ok := owes[l.Pod]; !ok {
					owes[l.Pod] = ""
				}
				if l.Kind == KindNetns {
					owes[l.Pod] = l.Path
				}
			}
		}
	}
	delErr := map[string]error{}
	deleted := false

	for _, l := range ls {
		if kindOrder[l.Kind] >= kindOrder[KindCNI] && !deleted {
			deleted = true
			pods := make([]string, 0, len(owes))
			for p := range owes {
				pods = append(pods, p)
			}
			sort.Strings(pods)
			for _, p := range pods {
				netns := owes[p]
				if netns != "" {
					if _, err := os.Stat(netns); err != nil {
						netns = ""
					}
				}
				if err := h.Teardown(ctx, p, netns); err != nil {
					delErr[p] = fmt.Errorf("CNI DEL of pod %s: %w", short(p), err)
				}
			}
		}
		if l.Pod != "" && known.pod(l.Pod) {
			act(l)("", fmt.Errorf("pod %s is live now; left alone", short(l.Pod)))
			continue
		}
		switch l.Kind {
		case KindShim:
			act(l)(h.killShim(cfg, l))
		case KindMount:
			was, err := h.unmountAll(l.Path)
			done := "unmounted"
			if !was {
				done = "gone already"
			}
			act(l)(done, err)
		case KindCNI:
			if err := delErr[l.Pod]; err != nil {
				act(l)("", err)
			} else if _, err := os.Stat(l.Path); errors.Is(err, fs.ErrNotExist) {
				act(l)("removed by CNI DEL", nil)
			} else {
				act(l)("", fmt.Errorf("CNI DEL of pod %s succeeded but left %s", short(l.Pod), l.Path))
			}
		case KindLease:
			act(l)(removeLease(l))
		case KindVeth:
			act(l)(h.removeVeth(cfg, l, known))
		case KindNetns:
			act(l)(h.removeNetns(l.Path))
		case KindCgroup:
			act(l)(h.removeCgroup(l))
		case KindDir:
			act(l)(h.removeDir(l))
		}
	}
	var failed []string
	for _, a := range acts {
		if a.Error != "" {
			failed = append(failed, a.Kind+" "+a.Path)
		}
	}
	if len(failed) > 0 {
		return acts, fmt.Errorf("could not remove %d %s: %s", len(failed), plural(len(failed), "leftover", "leftovers"), strings.Join(failed, ", "))
	}
	return acts, nil
}
