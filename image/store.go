package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/husk-runtime/husk/atomicfile"
)

// record is what Root/images/<id hex>.json holds.
type record struct {
	ID          string   `json:"id"`
	RepoTags    []string `json:"repoTags,omitempty"`
	RepoDigests []string `json:"repoDigests,omitempty"`
	// Blobs are the content blobs this image keeps: the manifest, the
	// config, and the index it was resolved from, if any.
	Blobs    []string  `json:"blobs"`
	ChainIDs []string  `json:"chainIDs"` // lowest layer first
	Size     uint64    `json:"size"`
	Config   v1.Config `json:"config"`
	Pinned   bool      `json:"pinned,omitempty"`
}

func (s *Store) recordPath(id string) string {
	return filepath.Join(s.imagesDir, strings.TrimPrefix(id, "sha256:")+".json")
}

// loadRecords reads every image record. A record whose layers are gone
// (a crash between unpack and record, or a damaged root) is dropped, so
// that a later pull makes the image whole again instead of failing mounts.
func (s *Store) loadRecords(ctx context.Context) error {
	ents, err := os.ReadDir(s.imagesDir)
	if err != nil {
		return fmt.Errorf("read %s: %w", s.imagesDir, err)
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, atomicfile.TempPrefix) {
			continue
		}
		p := filepath.Join(s.imagesDir, name)
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("read image record %s: %w", p, err)
		}
		var rec record
		if err := json.Unmarshal(data, &rec); err != nil {
			slog.WarnContext(ctx, "dropping unreadable image record", "path", p, "error", err)
			os.Remove(p)
			continue
		}
		if id, ok := idFrom(rec.ID); !ok || s.recordPath(id) != p {
			slog.WarnContext(ctx, "dropping image record with wrong id", "path", p, "id", rec.ID)
			os.Remove(p)
			continue
		}
		missing := false
		for _, c := range rec.ChainIDs {
			if _, ok := s.layers.Layers[c]; !ok {
				missing = true
			}
		}
		if missing {
			slog.WarnContext(ctx, "dropping image record with missing layers", "path", p, "id", rec.ID)
			os.Remove(p)
			continue
		}
		s.indexLocked(&rec)
	}
	return nil
}

func (s *Store) indexLocked(rec *record) {
	s.images[rec.ID] = rec
	for _, t := range rec.RepoTags {
		s.byTag[t] = rec.ID
	}
	for _, d := range rec.RepoDigests {
		s.byDgst[d] = rec.ID
	}
}

func (s *Store) saveRecordLocked(rec *record) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(s.recordPath(rec.ID), data, 0o600)
}

func (s *Store) deleteRecordLocked(rec *record) error {
	if err := os.Remove(s.recordPath(rec.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove image record %s: %w", rec.ID, err)
	}
	delete(s.images, rec.ID)
	for _, t := range rec.RepoTags {
		if s.byTag[t] == rec.ID {
			delete(s.byTag, t)
		}
	}
	for _, d := range rec.RepoDigests {
		if s.byDgst[d] == rec.ID {
			delete(s.byDgst, d)
		}
	}
	return nil
}

// imageLocked turns a record into the Image callers see.
func (s *Store) imageLocked(rec *record) Image {
	img := Image{
		ID:          rec.ID,
		RepoTags:    slices.Clone(rec.RepoTags),
		RepoDigests: slices.Clone(rec.RepoDigests),
		Size:        rec.Size,
		Config:      rec.Config,
		Pinned:      rec.Pinned,
	}
	for _, c := range rec.ChainIDs {
		if dir, ok := s.layerDirLocked(c); ok {
			img.Layers = append(img.Layers, dir)
		}
	}
	return img
}

// commitLocked records rec (a freshly pulled or imported image) under tag
// and repoDigest, either of which may be empty. A tag that pointed at
// another image moves; that image is removed when it is left with neither
// tags nor digests, as containerd does.
func (s *Store) commitLocked(rec *record, tag, repoDigest string) (_ *record, removed bool, _ error) {
	cur := s.images[rec.ID]
	if cur == nil {
		cur = rec
	} else {
		cur.Pinned = cur.Pinned || rec.Pinned
	}
	if tag != "" && !slices.Contains(cur.RepoTags, tag) {
		cur.RepoTags = append(cur.RepoTags, tag)
		sort.Strings(cur.RepoTags)
	}
	if repoDigest != "" && !slices.Contains(cur.RepoDigests, repoDigest) {
		cur.RepoDigests = append(cur.RepoDigests, repoDigest)
		sort.Strings(cur.RepoDigests)
	}
	if err := s.saveRecordLocked(cur); err != nil {
		return nil, false, err
	}
	if tag != "" {
		if oldID, ok := s.byTag[tag]; ok && oldID != cur.ID {
			if old := s.images[oldID]; old != nil {
				old.RepoTags = slices.DeleteFunc(old.RepoTags, func(t string) bool { return t == tag })
				gone, err := s.dropIfUnnamedLocked(old)
				if err != nil {
					return nil, false, err
				}
				removed = removed || gone
			}
		}
	}
	s.indexLocked(cur)
	return cur, removed, nil
}

// dropIfUnnamedLocked saves old, or deletes it when it has no name left.
func (s *Store) dropIfUnnamedLocked(old *record) (removed bool, err error) {
	if len(old.RepoTags) == 0 && len(old.RepoDigests) == 0 {
		return true, s.deleteRecordLocked(old)
	}
	return false, s.saveRecordLocked(old)
}

// Resolve finds an image by tag ("busybox", "busybox:1", a full name), by
// repo digest ("name@sha256:..."), by id ("sha256:<hex>" or bare hex), or by
// a unique id prefix of at least 4 hex digits.
func (s *Store) Resolve(ref string) (Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, _, err := s.resolveLocked(ref)
	if err != nil {
		return Image{}, err
	}
	return s.imageLocked(rec), nil
}

// resolveLocked returns the record ref names and, when ref named it by
// tag, that normalized tag.
func (s *Store) resolveLocked(ref string) (*record, string, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return nil, "", fmt.Errorf("%w: empty reference", ErrInvalidReference)
	}
	if id, ok := idFrom(ref); ok {
		if rec := s.images[id]; rec != nil {
			return rec, "", nil
		}
		return nil, "", fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	p, perr := parseRef(ref)
	if perr == nil {
		if p.digest != "" {
			if rec := s.images[s.byDgst[p.String()]]; rec != nil {
				return rec, "", nil
			}
		} else if rec := s.images[s.byTag[p.tagRef()]]; rec != nil {
			return rec, p.tagRef(), nil
		}
	}
	if prefix, ok := idPrefixFrom(ref); ok {
		var found []*record
		for id, rec := range s.images {
			if strings.HasPrefix(strings.TrimPrefix(id, "sha256:"), prefix) {
				found = append(found, rec)
			}
		}
		switch len(found) {
		case 1:
			return found[0], "", nil
		case 0:
		default:
			return nil, "", fmt.Errorf("%w: %q matches %d images", ErrAmbiguous, ref, len(found))
		}
	}
	if perr != nil {
		return nil, "", perr
	}
	return nil, "", fmt.Errorf("%w: %s", ErrNotFound, ref)
}

// List returns every image, ordered by id.
func (s *Store) List() []Image {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Image, 0, len(s.images))
	for _, rec := range s.images {
		out = append(out, s.imageLocked(rec))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Remove removes an image. Named by a tag while it has other tags, only that
// tag goes (docker rmi semantics); named by its last tag, by digest or by
// id, the whole image goes, with every tag and digest, as CRI RemoveImage
// does in containerd. Blobs and layers no other image uses are deleted,
// except layers still mounted.
func (s *Store) Remove(ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, tag, err := s.resolveLocked(ref)
	if err != nil {
		return err
	}
	if tag != "" && len(rec.RepoTags) > 1 {
		rec.RepoTags = slices.DeleteFunc(rec.RepoTags, func(t string) bool { return t == tag })
		delete(s.byTag, tag)
		return s.saveRecordLocked(rec)
	}
	if err := s.deleteRecordLocked(rec); err != nil {
		return err
	}
	return s.gcLocked()
}
