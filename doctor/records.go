package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/husk-runtime/husk/sandbox"
)

// inFlight is how long a pod may sit in state "creating" before doctor
// stops taking it for one being made right now. RunPodSandbox's own
// deadline is kubelet's (4m by default) and the CLI's 2m; a failure undoes
// every step before it returns.
const inFlight = 10 * time.Minute

// dirInFlight is how long a pod dir may have no record: RunPodSandbox
// writes the record right after making the dir, before anything else.
const dirInFlight = 30 * time.Second

// record is one pod as the disk has it.
type record struct {
	Pod        sandbox.Pod
	Containers []string
	Err        error // the record is unreadable
	ModTime    time.Time
	Missing    bool // a pod dir with no pod.json
}

// readRecords reads pods/<id>/pod.json and its containers' ids, for
// every id-named dir under the pods dir.
func readRecords(cfg Config) (map[string]*record, error) {
	ents, err := os.ReadDir(cfg.podsDir())
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]*record{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pod records in %s: %w", cfg.podsDir(), err)
	}
	out := map[string]*record{}
	for _, e := range ents {
		if !e.IsDir() || !isID(e.Name()) {
			continue
		}
		dir := cfg.paths().PodDir(e.Name())
		r := &record{}
		if fi, err := os.Stat(dir); err == nil {
			r.ModTime = fi.ModTime()
		}
		data, err := os.ReadFile(filepath.Join(dir, "pod.json"))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			r.Missing = true
		case err != nil:
			r.Err = fmt.Errorf("read %s: %w", filepath.Join(dir, "pod.json"), err)
		default:
			if err := json.Unmarshal(data, &r.Pod); err != nil {
				r.Err = fmt.Errorf("parse %s: %w", filepath.Join(dir, "pod.json"), err)
			}
		}
		cts, _ := os.ReadDir(cfg.paths().ContainersDir(e.Name()))
		for _, c := range cts {
			if c.IsDir() && isID(c.Name()) {
				r.Containers = append(r.Containers, c.Name())
			}
		}
		out[e.Name()] = r
	}
	return out, nil
}

// recent reports whether a pod of this record may be being made right
// now: RunPodSandbox makes the dir, then writes the record in state
// "creating", and only lists the pod once it is ready.
func (r *record) recent(now time.Time) bool {
	if r.Missing {
		return now.Sub(r.ModTime) < dirInFlight
	}
	return r.Err == nil && r.Pod.State == sandbox.PodCreating && now.Sub(r.Pod.CreatedAt) < inFlight
}

// FromRecords is the Lister used when the daemon cannot be asked: every pod
// with a record (whatever its state: the daemon's recovery owns the half-
// made ones) and every container in it is known. It is the conservative
// choice, so it is also safe while a daemon runs.
func FromRecords(cfg Config, now func() time.Time) Lister {
	return func(context.Context) (Known, error) {
		recs, err := readRecords(cfg)
		if err != nil {
			return Known{}, err
		}
		k := Known{Source: "records", Pods: map[string]bool{}, Containers: map[string]bool{}}
		for id, r := range recs {
			if r.Missing && !r.recent(now()) {
				continue // a pod dir with no record names no pod
			}
			k.Pods[id] = true
			for _, c := range r.Containers {
				k.Containers[c] = true
			}
		}
		return k, nil
	}
}
