package image

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"os"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// Layers and kept layer blobs reach the disk after the pull, not during it.
//
// A pull used to syncfs each layer before putting it in place. On these
// machines that wait was the disk's write rate (100 to 360 MB/s, for the
// unpacked layer and its kept blob: twice the layer's size), not the
// pull's, and it was most of a pull of a large image. What the wait
// protects against is narrower than it looks:
//
//   - The daemon killed, even with kill -9, loses nothing: what it wrote
//     is in the kernel's page cache, which goes to disk all the same.
//   - Only the machine going down (power, a kernel crash) loses writes not
//     yet on disk, and that always changes the kernel's boot id.
//
// So a layer, and the blob kept with it, is put in place without waiting,
// marked in the layer index with the boot it was written in (the mark is
// written, fsynced, before the blob goes in place; a layer's directory is
// unusable until its index entry exists). A flush clears the marks: one
// syncfs per filesystem, flushDelay after the first mark, by when the
// kernel's own writeback (dirty_expire_centisecs, 30 s by default) has
// sent most of it, so the syncfs is cheap and off every caller's path.
// At Open, marks from this boot only need that flush; marks from another
// boot mean the machine went down before it: those layers are removed
// (loadRecords then drops the images that use them, and the next pull
// makes them whole again) and those blobs are kept only if their bytes
// still have their digest.
//
// containerd's overlayfs snapshotter does not sync unpacked layers at all
// unless CRI's image_pull_with_sync_fs is set (off by default, "to avoid
// slowing down image pulls"); a machine crash soon after a pull can then
// leave empty files in a layer it believes whole (containerd#5854). Here
// that case is detected and repaired instead.

// DefaultFlushDelay is how long after a layer is put in place its flush
// runs, when Config.FlushDelay is 0.
const DefaultFlushDelay = 30 * time.Second

// markLayerLocked and markBlobLocked mark a layer (by chain id) or a blob
// as put in place in this boot and not yet flushed, and schedule the
// flush; the caller saves the index. s.mu must be held. Each mark also
// gets a number, in memory only, so that a flush clears only the marks it
// saw before its syncfs: a layer removed and unpacked again meanwhile
// keeps its new mark.
func (s *Store) markLayerLocked(chainID string, e layerEntry) {
	e.Unflushed = s.boot
	s.layers.Layers[chainID] = e
	s.noteMarkLocked("layer " + chainID)
}

func (s *Store) markBlobLocked(d v1.Hash) {
	if s.layers.UnflushedBlobs == nil {
		s.layers.UnflushedBlobs = make(map[string]string)
	}
	s.layers.UnflushedBlobs[d.String()] = s.boot
	s.noteMarkLocked("blob " + d.String())
}

func (s *Store) noteMarkLocked(key string) {
	if s.marks == nil {
		s.marks = make(map[string]uint64)
	}
	s.markSeq++
	s.marks[key] = s.markSeq
	s.scheduleFlushLocked()
}

// scheduleFlushLocked starts the flush timer unless it runs already.
// s.mu must be held.
func (s *Store) scheduleFlushLocked() {
	if s.flushTimer != nil {
		return
	}
	s.flushTimer = time.AfterFunc(s.flushDelay, func() {
		// A failed Flush schedules the next one itself.
		if err := s.Flush(); err != nil {
			s.log.Warn("flushing unpacked layers to disk failed; retrying later", "error", err)
		}
	})
}

// Flush waits until every layer and kept blob put in place so far is on
// disk, and clears their marks. The daemon calls it before it exits; a
// timer calls it after a pull.
func (s *Store) Flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()

	// What is marked now was written before the syncfs below starts, so
	// the syncfs covers it; what is marked meanwhile waits for the next
	// flush, which its marking scheduled.
	s.mu.Lock()
	if s.flushTimer != nil {
		s.flushTimer.Stop()
		s.flushTimer = nil
	}
	seen := maps.Clone(s.marks)
	s.mu.Unlock()
	if len(seen) == 0 {
		return nil
	}

	start := time.Now()
	if err := syncFilesystems(s.layersDir, s.contentDir); err != nil {
		s.mu.Lock()
		s.scheduleFlushLocked()
		s.mu.Unlock()
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for key, seq := range seen {
		if s.marks[key] != seq {
			continue // marked again since: for the next flush
		}
		delete(s.marks, key)
		kind, id, _ := strings.Cut(key, " ")
		if kind == "blob" {
			delete(s.layers.UnflushedBlobs, id)
		} else if e, ok := s.layers.Layers[id]; ok {
			e.Unflushed = ""
			s.layers.Layers[id] = e
		}
	}
	if err := s.saveLayersLocked(); err != nil {
		// The marks stay on disk: at worst, a crash of the machine now
		// costs a pull again. Retried with the next flush.
		s.scheduleFlushLocked()
		return err
	}
	s.log.Debug("unpacked layers and blobs flushed to disk", "marks", len(seen), "took", time.Since(start))
	return nil
}

// syncFilesystems syncfs's each filesystem holding one of dirs, once.
func syncFilesystems(dirs ...string) error {
	seen := make(map[uint64]bool)
	for _, dir := range dirs {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: dir, Err: err}
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		if err == nil && !seen[st.Dev] {
			seen[st.Dev] = true
			err = unix.Syncfs(fd)
		}
		unix.Close(fd)
		if err != nil {
			return &os.PathError{Op: "syncfs", Path: dir, Err: err}
		}
	}
	return nil
}

// recoverUnflushed deals with the marks a previous daemon left (see the
// top of this file): from this boot, they wait for a flush; from another,
// what they mark may be torn and is removed, blobs whose bytes are intact
// excepted. It runs in loadLayers, before the image records are read.
// It reports whether the index changed.
func (s *Store) recoverUnflushed(ctx context.Context) (changed bool, err error) {
	for chain, e := range s.layers.Layers {
		switch e.Unflushed {
		case "":
			continue
		case s.boot:
			s.noteMarkLocked("layer " + chain)
			continue
		}
		// Out of the index, its directory is swept with the other
		// unindexed ones (loadLayers).
		slog.WarnContext(ctx, "removing a layer the machine went down before it reached the disk; images using it are pulled again",
			"chainID", chain, "dir", strconv.Itoa(e.N), "boot", e.Unflushed)
		delete(s.layers.Layers, chain)
		changed = true
	}
	for ds, boot := range s.layers.UnflushedBlobs {
		if boot == s.boot {
			s.noteMarkLocked("blob " + ds)
			continue
		}
		changed = true
		delete(s.layers.UnflushedBlobs, ds)
		d, err := v1.NewHash(ds)
		if err != nil {
			continue
		}
		r, _, err := s.openBlob(d)
		if errors.Is(err, os.ErrNotExist) {
			continue // never put in place, or collected since
		}
		if err == nil {
			// A verifyingReader fails at its end on a digest mismatch.
			_, err = io.Copy(io.Discard, r)
			r.Close()
		}
		if err != nil {
			slog.WarnContext(ctx, "removing a layer blob the machine went down before it reached the disk", "digest", ds, "error", err)
			if err := s.removeBlob(d); err != nil {
				return changed, err
			}
		}
	}
	return changed, nil
}
