package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/husk-runtime/husk/errdefs"
	"golang.org/x/sync/errgroup"
)

// ErrInvalidArchive is returned (wrapped) when an archive to import is not
// a readable OCI image layout or `docker save` tarball, or when what it
// holds does not match its own digests.
var ErrInvalidArchive = errdefs.New(errdefs.ErrInvalidArgument, "invalid image archive")

// Member names of the two archive formats.
const (
	ociLayoutFile      = "oci-layout"    // OCI image layout marker
	ociIndexFile       = "index.json"    // OCI image layout entry point
	dockerManifestFile = "manifest.json" // `docker save`
)

// Annotations an OCI layout names its images with: containerd and docker
// put the full name in the first and only the tag in the second; other
// tools (skopeo, buildkit) may put a full name in the second.
const (
	annotationImageName = "io.containerd.image.name"
	annotationRefName   = "org.opencontainers.image.ref.name"
)

// archiveImage is one image found in an archive, checked but not stored.
type archiveImage struct {
	rec    *record            // id, chain ids, config, size, blobs; no names yet
	blobs  map[v1.Hash][]byte // manifest, config and index, verified
	layers []archiveLayer     // lowest first
	names  []imageName
}

type archiveLayer struct {
	member         string // where the blob is in the archive
	digest, diffID v1.Hash
	chainID        string
}

type imageName struct{ tag, repoDigest string }

// Import reads an image archive from r and records every image in it:
// an OCI image layout in a tar (`docker save` since Docker 25, `ctr
// export`, `skopeo copy oci-archive:`, husk's own export) or a `docker
// save` tarball with manifest.json, either optionally gzip- or
// zstd-compressed. Images go through the path a pull takes: every blob is
// verified against its digest, every layer is unpacked once (layers the
// store has are shared) and kept as distributed, and records are written
// atomically. Either every image is recorded or none is, and a failed
// import leaves nothing of itself behind.
func (s *Store) Import(ctx context.Context, r io.Reader) ([]Image, error) {
	f, err := s.spool(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	a, err := openArchive(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	var imgs []*archiveImage
	var format string
	switch {
	case a.has(ociLayoutFile) || a.has(ociIndexFile):
		format = "oci"
		imgs, err = a.ociImages()
	case a.has(dockerManifestFile):
		format = "docker"
		imgs, err = a.dockerImages(ctx)
	default:
		err = fmt.Errorf("%w: unknown format: neither an OCI image layout (%s, %s) nor a docker save tarball (%s)",
			ErrInvalidArchive, ociLayoutFile, ociIndexFile, dockerManifestFile)
	}
	if err != nil {
		if format == "" {
			return nil, fmt.Errorf("import: %w", err)
		}
		return nil, fmt.Errorf("import %s archive: %w", format, err)
	}
	out, err := s.importImages(ctx, a, imgs)
	if err != nil {
		return nil, fmt.Errorf("import %s archive: %w", format, err)
	}
	return out, nil
}

// importImages stores what the archive's images need, then records them
// all at once. Everything is held against collection until the records
// exist; on failure, collection removes whatever this import stored that
// no image record refers to.
func (s *Store) importImages(ctx context.Context, a *archive, imgs []*archiveImage) (_ []Image, err error) {
	var held []string
	for _, im := range imgs {
		held = append(append(held, im.rec.ChainIDs...), im.rec.Blobs...)
	}
	s.mu.Lock()
	s.holdLocked(held)
	s.mu.Unlock()
	committed := false
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.releaseLocked(held)
		if !committed {
			if gcErr := s.gcLocked(); gcErr != nil {
				slog.WarnContext(ctx, "cleaning up after a failed import", "error", gcErr)
			}
		}
	}()

	for _, im := range imgs {
		for d, data := range im.blobs {
			if err := s.putBlob(d, data); err != nil {
				return nil, fmt.Errorf("store blob %s: %w", d, err)
			}
		}
	}
	// Layers are unpacked a few at a time, as a pull does; one shared by
	// several images of the archive is unpacked once (ensureLayer
	// serializes a chain id), and each distinct blob of it is kept.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelLayers)
	seen := make(map[string]bool)
	for _, im := range imgs {
		for _, l := range im.layers {
			key := l.chainID + "@" + l.digest.String()
			if seen[key] {
				continue
			}
			seen[key] = true
			g.Go(func() error { return s.importLayer(gctx, a, l) })
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Image
	removed := false
	for _, im := range imgs {
		// An image the store has already (pulled before layer blobs were
		// kept, say) now refers to the blobs this import kept, so that it
		// can be exported and they are collected with it.
		if cur := s.images[im.rec.ID]; cur != nil {
			for _, b := range im.rec.Blobs {
				if !slices.Contains(cur.Blobs, b) {
					cur.Blobs = append(cur.Blobs, b)
				}
			}
		}
		names := im.names
		if len(names) == 0 {
			names = []imageName{{}}
		}
		var cur *record
		for _, n := range names {
			var gone bool
			cur, gone, err = s.commitLocked(im.rec, n.tag, n.repoDigest)
			if err != nil {
				return nil, fmt.Errorf("record image %s: %w", im.rec.ID, err)
			}
			removed = removed || gone
		}
		committed = true
		slog.InfoContext(ctx, "image imported", "id", cur.ID, "tags", cur.RepoTags, "digests", cur.RepoDigests)
		out = append(out, s.imageLocked(cur))
	}
	if removed {
		if err := s.gcLocked(); err != nil {
			slog.WarnContext(ctx, "image garbage collection failed", "error", err)
		}
	}
	return out, nil
}

// importLayer unpacks one layer from the archive unless the store has it,
// and keeps its blob either way.
func (s *Store) importLayer(ctx context.Context, a *archive, l archiveLayer) error {
	open := func() (io.ReadCloser, error) {
		sr, err := a.open(l.member)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(sr), nil
	}
	if _, err := s.ensureLayer(ctx, l.chainID, l.diffID, l.digest, open, true); err != nil {
		if archiveFault(ctx, err) {
			return fmt.Errorf("%w: %s: %v", ErrInvalidArchive, l.member, err)
		}
		return fmt.Errorf("%s: %w", l.member, err)
	}
	// The layer was unpacked already (by another image), so its blob was
	// not read: copy it now, checked as the unpack would have.
	if err := s.ensureLayerBlob(ctx, l.digest, l.diffID, open); err != nil {
		if archiveFault(ctx, err) {
			return fmt.Errorf("%w: %s: %v", ErrInvalidArchive, l.member, err)
		}
		return fmt.Errorf("%s: %w", l.member, err)
	}
	return nil
}

// archiveFault tells a layer the archive got wrong (a digest mismatch, a
// damaged tar) from a failure of this node (a full disk), which is no
// reason to call the input invalid.
func archiveFault(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	for _, e := range []error{syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EROFS, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return false
		}
	}
	return true
}

// blob reads the blob desc names from an OCI layout, checked against the
// descriptor's digest and size.
func (a *archive) blob(desc v1.Descriptor, what string) ([]byte, error) {
	member, err := layoutBlobPath(desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidArchive, what, err)
	}
	if !a.has(member) {
		return nil, fmt.Errorf("%w: %s %s: blob %s is not in the archive", ErrInvalidArchive, what, desc.Digest, member)
	}
	data, err := a.readSmall(member)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if got := digestOf(data); got != desc.Digest {
		return nil, fmt.Errorf("%w: %s: blob %s has digest %s", ErrInvalidArchive, what, member, got)
	}
	if desc.Size != 0 && int64(len(data)) != desc.Size {
		return nil, fmt.Errorf("%w: %s: blob %s is %d bytes, its descriptor says %d", ErrInvalidArchive, what, member, len(data), desc.Size)
	}
	return data, nil
}

// layoutBlobPath is where an OCI layout keeps the blob with digest d.
func layoutBlobPath(d v1.Hash) (string, error) {
	if d.Algorithm != "sha256" || len(d.Hex) != 64 || !isHex(d.Hex) {
		return "", fmt.Errorf("unsupported digest %q", d.String())
	}
	return "blobs/sha256/" + d.Hex, nil
}

// ociImages reads an OCI image layout: each manifest index.json lists is
// an image (an index is resolved to this node's platform, as a pull
// does), named by its annotations.
func (a *archive) ociImages() ([]*archiveImage, error) {
	raw, err := a.readSmall(ociLayoutFile)
	if err != nil {
		return nil, err
	}
	var layout struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := json.Unmarshal(raw, &layout); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidArchive, ociLayoutFile, err)
	}
	if !strings.HasPrefix(layout.Version, "1.") {
		return nil, fmt.Errorf("%w: %s: image layout version %q, want 1.x", ErrInvalidArchive, ociLayoutFile, layout.Version)
	}
	raw, err = a.readSmall(ociIndexFile)
	if err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidArchive, ociIndexFile, err)
	}
	if len(idx.Manifests) == 0 {
		return nil, fmt.Errorf("%w: %s lists no images", ErrInvalidArchive, ociIndexFile)
	}
	// Several entries may name one manifest: one image, several names.
	byDigest := make(map[v1.Hash]*archiveImage)
	var out []*archiveImage
	for i, desc := range idx.Manifests {
		what := fmt.Sprintf("%s entry %d", ociIndexFile, i)
		name, err := ociName(desc.Annotations)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalidArchive, what, err)
		}
		im := byDigest[desc.Digest]
		if im == nil {
			im, err = a.ociImage(desc, what)
			if err != nil {
				return nil, err
			}
			byDigest[desc.Digest] = im
			out = append(out, im)
		}
		if name != nil {
			// The repo digest is the digest the entry names, the index's
			// for a multi-platform image, as a pull by tag records it.
			n := imageName{tag: name.tagRef(), repoDigest: name.name() + "@" + desc.Digest.String()}
			if !slices.Contains(im.names, n) {
				im.names = append(im.names, n)
			}
		}
	}
	return out, nil
}

// ociName is the name an index.json entry gives its image, or nil.
func ociName(ann map[string]string) (*parsedRef, error) {
	n := ann[annotationImageName]
	// A ref.name without "/" or ":" is a bare tag ("latest"), which names
	// no repository.
	if r := ann[annotationRefName]; n == "" && strings.ContainsAny(r, "/:") {
		n = r
	}
	if n == "" {
		return nil, nil
	}
	p, err := parseRef(n)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// ociImage reads the image an index.json entry points at.
func (a *archive) ociImage(desc v1.Descriptor, what string) (*archiveImage, error) {
	blobs := make(map[v1.Hash][]byte)
	// Nested indexes are followed a few levels deep (docker's layouts put
	// an index under index.json); deeper is a loop or an abuse.
	for depth := 0; ; depth++ {
		raw, err := a.blob(desc, what)
		if err != nil {
			return nil, err
		}
		mt := desc.MediaType
		if mt == "" {
			var probe struct {
				MediaType types.MediaType `json:"mediaType"`
			}
			_ = json.Unmarshal(raw, &probe)
			mt = probe.MediaType
		}
		if desc.Platform != nil && !desc.Platform.Satisfies(platform()) {
			return nil, fmt.Errorf("%w: %s: %s is for %s, not %s", ErrInvalidArchive, what, desc.Digest, desc.Platform, platformString())
		}
		switch {
		case mt.IsImage():
			blobs[desc.Digest] = raw
			return a.ociManifest(raw, blobs, what+" manifest "+desc.Digest.String())
		case mt.IsIndex():
			if depth >= 3 {
				return nil, fmt.Errorf("%w: %s: indexes nested more than 3 deep", ErrInvalidArchive, what)
			}
			blobs[desc.Digest] = raw
			idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
			if err != nil {
				return nil, fmt.Errorf("%w: %s: index %s: %v", ErrInvalidArchive, what, desc.Digest, err)
			}
			child, ok := platformChild(idx)
			if !ok {
				return nil, fmt.Errorf("%w: %s: index %s has no image for %s", ErrInvalidArchive, what, desc.Digest, platformString())
			}
			desc = child
		default:
			return nil, fmt.Errorf("%w: %s: %s has media type %q, neither an image manifest nor an index", ErrInvalidArchive, what, desc.Digest, mt)
		}
	}
}

// platformChild picks the entry of idx for this node's platform: the first
// that satisfies it, as go-containerregistry's remote.WithPlatform does for
// pulls. An entry that states no platform fits any.
func platformChild(idx *v1.IndexManifest) (v1.Descriptor, bool) {
	for _, d := range idx.Manifests {
		if !d.MediaType.IsImage() && !d.MediaType.IsIndex() {
			continue
		}
		if d.Platform == nil || d.Platform.Satisfies(platform()) {
			return d, true
		}
	}
	return v1.Descriptor{}, false
}

// ociManifest checks an image manifest of a layout and what it refers to.
func (a *archive) ociManifest(raw []byte, blobs map[v1.Hash][]byte, what string) (*archiveImage, error) {
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidArchive, what, err)
	}
	rawConfig, err := a.blob(m.Config, what+" config")
	if err != nil {
		return nil, err
	}
	blobs[m.Config.Digest] = rawConfig
	im, err := newArchiveImage(rawConfig, m.Config.Digest, blobs, len(m.Layers), what)
	if err != nil {
		return nil, err
	}
	for i, l := range m.Layers {
		member, err := layoutBlobPath(l.Digest)
		if err != nil {
			return nil, fmt.Errorf("%w: %s layer %d: %v", ErrInvalidArchive, what, i, err)
		}
		e, ok := a.lookup(member)
		if !ok {
			return nil, fmt.Errorf("%w: %s layer %d: blob %s is not in the archive", ErrInvalidArchive, what, i, member)
		}
		if e.size != l.Size {
			return nil, fmt.Errorf("%w: %s layer %d: blob %s is %d bytes, the manifest says %d", ErrInvalidArchive, what, i, member, e.size, l.Size)
		}
		im.addLayer(member, l.Digest, i, l.Size)
	}
	return im, nil
}

// newArchiveImage starts an image from its config. Layers are added with
// addLayer.
func newArchiveImage(rawConfig []byte, id v1.Hash, blobs map[v1.Hash][]byte, layers int, what string) (*archiveImage, error) {
	cf, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: config %s: %v", ErrInvalidArchive, what, id, err)
	}
	if len(cf.RootFS.DiffIDs) != layers {
		return nil, fmt.Errorf("%w: %s: config %s lists %d diff ids for %d layers", ErrInvalidArchive, what, id, len(cf.RootFS.DiffIDs), layers)
	}
	im := &archiveImage{
		rec:   &record{ID: id.String(), ChainIDs: chainIDs(cf.RootFS.DiffIDs), Config: cf.Config},
		blobs: blobs,
	}
	for d := range blobs {
		im.rec.Blobs = append(im.rec.Blobs, d.String())
	}
	for i, d := range cf.RootFS.DiffIDs {
		im.layers = append(im.layers, archiveLayer{diffID: d, chainID: im.rec.ChainIDs[i]})
	}
	return im, nil
}

func (im *archiveImage) addLayer(member string, digest v1.Hash, i int, size int64) {
	im.layers[i].member = member
	im.layers[i].digest = digest
	im.rec.Size += uint64(size)
	if !slices.Contains(im.rec.Blobs, digest.String()) {
		im.rec.Blobs = append(im.rec.Blobs, digest.String())
	}
}

// dockerImages reads a `docker save` tarball. It carries no manifest, so
// husk writes one (OCI, as Docker 25 does) with the layers as stored; the
// config, whose digest is the image id, lists their diff ids, which the
// unpack checks. Such an image has no repo digest: no registry ever served
// that manifest (docker load records none either).
func (a *archive) dockerImages(ctx context.Context) ([]*archiveImage, error) {
	raw, err := a.readSmall(dockerManifestFile)
	if err != nil {
		return nil, err
	}
	var dm tarball.Manifest
	if err := json.Unmarshal(raw, &dm); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidArchive, dockerManifestFile, err)
	}
	if len(dm) == 0 {
		return nil, fmt.Errorf("%w: %s lists no images", ErrInvalidArchive, dockerManifestFile)
	}
	byID := make(map[v1.Hash]*archiveImage)
	var out []*archiveImage
	for i, d := range dm {
		what := fmt.Sprintf("%s entry %d", dockerManifestFile, i)
		var names []imageName
		for _, t := range d.RepoTags {
			p, err := parseRef(t)
			if err != nil || p.tag == "" {
				return nil, fmt.Errorf("%w: %s: RepoTag %q is not a name:tag", ErrInvalidArchive, what, t)
			}
			names = append(names, imageName{tag: p.tagRef()})
		}
		rawConfig, err := a.readSmall(d.Config)
		if err != nil {
			return nil, fmt.Errorf("%s config: %w", what, err)
		}
		id := digestOf(rawConfig)
		if want, ok := digestInName(d.Config); ok && want != id {
			return nil, fmt.Errorf("%w: %s: config %s has digest %s", ErrInvalidArchive, what, d.Config, id)
		}
		if im := byID[id]; im != nil {
			im.names = append(im.names, names...)
			continue
		}
		im, err := a.dockerImage(ctx, d, rawConfig, id, what)
		if err != nil {
			return nil, err
		}
		im.names = names
		byID[id] = im
		out = append(out, im)
	}
	return out, nil
}

func (a *archive) dockerImage(ctx context.Context, d tarball.Descriptor, rawConfig []byte, id v1.Hash, what string) (*archiveImage, error) {
	blobs := map[v1.Hash][]byte{id: rawConfig}
	im, err := newArchiveImage(rawConfig, id, blobs, len(d.Layers), what)
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(rawConfig)), Digest: id},
	}
	for i, member := range d.Layers {
		sr, err := a.open(member)
		if err != nil {
			return nil, fmt.Errorf("%s layer %d: %w", what, i, err)
		}
		// The layer's digest is not written anywhere but in some file
		// names; hash it (a local read) so the unpack can check it.
		digest, mt, err := hashLayer(ctx, sr)
		if err != nil {
			return nil, fmt.Errorf("%s layer %d (%s): %w", what, i, member, err)
		}
		if want, ok := digestInName(member); ok && want != digest {
			return nil, fmt.Errorf("%w: %s layer %d: %s has digest %s", ErrInvalidArchive, what, i, member, digest)
		}
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: mt, Size: sr.Size(), Digest: digest})
		im.addLayer(member, digest, i, sr.Size())
	}
	rawManifest, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	md := digestOf(rawManifest)
	im.blobs[md] = rawManifest
	im.rec.Blobs = append(im.rec.Blobs, md.String())
	return im, nil
}

// hashLayer returns the digest of a layer blob and the OCI media type its
// compression calls for.
func hashLayer(ctx context.Context, sr *io.SectionReader) (v1.Hash, types.MediaType, error) {
	var magic [4]byte
	n, _ := sr.ReadAt(magic[:], 0)
	mt := types.OCIUncompressedLayer
	switch {
	case bytes.HasPrefix(magic[:n], gzipMagic):
		mt = types.OCILayer
	case bytes.HasPrefix(magic[:n], zstdMagic):
		mt = types.OCILayerZStd
	}
	h, _, err := v1.SHA256(ctxReader{ctx, io.NewSectionReader(sr, 0, sr.Size())})
	if err != nil {
		return v1.Hash{}, "", err
	}
	return h, mt, nil
}

// digestInName returns the digest a member's name spells, when it is one
// of the names that do: "blobs/sha256/<hex>" (Docker 25), "sha256:<hex>"
// (go-containerregistry's config) or "<hex>.json" (older docker's
// config). Other names ("<id>/layer.tar") are just names.
func digestInName(member string) (v1.Hash, bool) {
	n, _ := archiveName(member)
	var hexPart string
	switch {
	case strings.HasPrefix(n, "blobs/sha256/"):
		hexPart = strings.TrimPrefix(n, "blobs/sha256/")
	case strings.HasPrefix(n, "sha256:"):
		hexPart = strings.TrimPrefix(n, "sha256:")
	case strings.HasSuffix(n, ".json") && !strings.Contains(n, "/"):
		hexPart = strings.TrimSuffix(n, ".json")
	}
	if len(hexPart) != 64 || !isHex(hexPart) {
		return v1.Hash{}, false
	}
	return v1.Hash{Algorithm: "sha256", Hex: hexPart}, true
}
