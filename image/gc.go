package image

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/husk-runtime/husk/atomicfile"
	"github.com/moby/sys/mountinfo"
)

// holdLocked keeps keys (chain ids and blob digests) of a pull in progress
// from being collected before its record exists. s.mu must be held.
func (s *Store) holdLocked(keys []string) {
	if s.holds == nil {
		s.holds = make(map[string]int)
	}
	for _, k := range keys {
		s.holds[k]++
	}
}

func (s *Store) releaseLocked(keys []string) {
	for _, k := range keys {
		if s.holds[k]--; s.holds[k] <= 0 {
			delete(s.holds, k)
		}
	}
}

// SetInUse gives the store a way to learn the layer dirs that containers
// use (their records list them): an image removed while a container of it
// exists keeps its layers until the container is gone, as with containerd,
// also after a reboot has undone every mount. f must not call the store.
func (s *Store) SetInUse(f func() []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inUse = f
}

// Collect deletes what no image and no container uses. The daemon runs it
// at start, once the containers are known, so that a collection a crash
// interrupted is finished.
func (s *Store) Collect() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gcLocked()
}

// gcLocked deletes the layers and blobs no image record (and no pull in
// progress) refers to. A layer a container uses is kept: one listed by
// inUse, or a lower dir of a mounted overlay (deleting files under a
// running container would break it). s.mu must be held.
//
// It is crash-safe: a layer leaves the index only after it is renamed to a
// temp name that Open removes, and a blob is a file of its own; a kill at
// any point leaves nothing Open and the next collection cannot finish.
func (s *Store) gcLocked() error {
	var layers, blobs int
	defer func() { s.rec.Collected(layers, blobs) }()
	used := make(map[string]bool)
	for k := range s.holds {
		used[k] = true
	}
	for _, rec := range s.images {
		for _, c := range rec.ChainIDs {
			used[c] = true
		}
		for _, b := range rec.Blobs {
			used[b] = true
		}
	}

	mounted, err := s.mountedLowerDirs()
	if err != nil {
		return err
	}
	if s.inUse != nil {
		for _, d := range s.inUse() {
			mounted[d] = true
		}
	}
	var doomed []string
	for chain, e := range s.layers.Layers {
		if used[chain] {
			continue
		}
		dir := filepath.Join(s.layersDir, strconv.Itoa(e.N))
		if mounted[dir] {
			s.log.Info("keeping unreferenced layer: a container uses it", "dir", dir, "chainID", chain)
			continue
		}
		// Rename first so the index never names a half-deleted directory;
		// Open removes what a crash leaves under the temp name.
		gone := filepath.Join(s.layersDir, atomicfile.TempPrefix+"gc-"+strconv.Itoa(e.N))
		if err := os.Rename(dir, gone); err != nil {
			return fmt.Errorf("remove layer %s: %w", dir, err)
		}
		delete(s.layers.Layers, chain)
		doomed = append(doomed, gone)
	}
	if len(doomed) > 0 {
		if err := s.saveLayersLocked(); err != nil {
			return err
		}
	}
	for _, d := range doomed {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("remove layer %s: %w", d, err)
		}
		layers++
	}

	ents, err := os.ReadDir(s.contentDir)
	if err != nil {
		return fmt.Errorf("read %s: %w", s.contentDir, err)
	}
	for _, e := range ents {
		if len(e.Name()) != 64 || !isHex(e.Name()) || used["sha256:"+e.Name()] {
			continue
		}
		if err := s.removeBlob(v1.Hash{Algorithm: "sha256", Hex: e.Name()}); err != nil {
			return err
		}
		blobs++
	}
	return nil
}

// mountedLowerDirs returns every directory used as an overlay lower dir.
// A rootfs of a container in a user namespace names idmapped clones of its
// layers (<root>/idmap/<token>/<layer dir name>, see idmapLowers), which
// stand for the layer dirs of the same name.
func (s *Store) mountedLowerDirs() (map[string]bool, error) {
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("overlay"))
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	out := make(map[string]bool)
	for _, m := range mounts {
		for _, opt := range strings.Split(m.VFSOptions, ",") {
			if v, ok := strings.CutPrefix(opt, "lowerdir="); ok {
				for _, d := range strings.Split(v, ":") {
					out[d] = true
					if filepath.Dir(filepath.Dir(d)) == filepath.Join(s.root, idmapDirName) {
						out[filepath.Join(s.layersDir, filepath.Base(d))] = true
					}
				}
			}
		}
	}
	return out, nil
}
