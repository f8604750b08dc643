package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/husk-runtime/husk/errdefs"
)

// ErrNotExportable is returned (wrapped) when an image is in the store but
// its blobs are not all there to write out: built-in images (unpacked from
// the husk binary, never distributed) and images pulled before husk kept
// layer blobs. Pulling or importing such an image again does not help while
// its layers stay unpacked; removing it first does.
var ErrNotExportable = errdefs.New(errdefs.ErrFailedPrecondition, "image cannot be exported")

// ArchiveFormat is the layout an export writes.
type ArchiveFormat int

const (
	// FormatOCI is an OCI image layout (oci-layout, index.json, blobs/) in
	// a tar, which `ctr import`, `skopeo copy oci-archive:`, Docker 25+
	// and husk read.
	FormatOCI ArchiveFormat = iota
	// FormatDocker is a `docker save` tarball (manifest.json), which every
	// `docker load` reads.
	FormatDocker
)

func (f ArchiveFormat) String() string {
	switch f {
	case FormatOCI:
		return "oci"
	case FormatDocker:
		return "docker"
	}
	return fmt.Sprintf("format(%d)", int(f))
}

// exportImage is what an export writes, gathered and checked before the
// first byte goes out.
type exportImage struct {
	id          v1.Hash
	tags        []string // normalized "name:tag"
	manifest    *v1.Manifest
	rawManifest []byte
	manifestMT  types.MediaType
	rawConfig   []byte
}

// Export writes the image ref names to w as an archive in format, with
// the blobs as the store keeps them, so its manifest, layer digests and id
// are those it was pulled or imported with. Named by a tag, the archive
// names the image by that tag; named by digest or id, by all its tags.
// Every check (the image exists, all its blobs are kept) is made before
// anything is written, and the blobs are held against collection while
// they are read.
func (s *Store) Export(ctx context.Context, ref string, format ArchiveFormat, w io.Writer) error {
	if format != FormatOCI && format != FormatDocker {
		return fmt.Errorf("export %s: unknown archive format %s", ref, format)
	}
	s.mu.Lock()
	rec, tag, err := s.resolveLocked(ref)
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("export %s: %w", ref, err)
	}
	held := append(slices.Clone(rec.Blobs), rec.ChainIDs...)
	s.holdLocked(held)
	tags := slices.Clone(rec.RepoTags)
	if tag != "" {
		tags = []string{tag}
	}
	id, blobs := rec.ID, slices.Clone(rec.Blobs)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.releaseLocked(held)
		s.mu.Unlock()
	}()

	ex, err := s.exportImage(id, blobs, tags)
	if err != nil {
		return fmt.Errorf("export %s: %w", ref, err)
	}
	switch format {
	case FormatDocker:
		err = s.writeDocker(ctx, ex, w)
	default:
		err = s.writeOCI(ctx, ex, w)
	}
	if err != nil {
		return fmt.Errorf("export %s as %s archive: %w", ref, format, err)
	}
	return nil
}

// exportImage finds the image's manifest among its blobs (the one whose
// config is the image) and checks that every blob it names is kept.
func (s *Store) exportImage(id string, blobs, tags []string) (*exportImage, error) {
	ex := &exportImage{tags: tags}
	for _, b := range blobs {
		d, err := v1.NewHash(b)
		if err != nil {
			continue
		}
		// Layer blobs are kept too; only small ones can be a manifest.
		p, err := s.blobPath(d)
		if err != nil {
			continue
		}
		if fi, err := os.Stat(p); err != nil || fi.Size() > maxJSONBlob {
			continue
		}
		raw, err := s.readBlob(d)
		if err != nil {
			return nil, err
		}
		var probe struct {
			MediaType types.MediaType `json:"mediaType"`
			Config    *v1.Descriptor  `json:"config"`
		}
		if json.Unmarshal(raw, &probe) != nil || probe.Config == nil || probe.Config.Digest.String() != id {
			continue
		}
		m, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			continue
		}
		ex.manifest, ex.rawManifest, ex.manifestMT = m, raw, probe.MediaType
		if ex.manifestMT == "" {
			// Without a mediaType field, the OCI spec's own type.
			ex.manifestMT = types.OCIManifestSchema1
		}
		break
	}
	if ex.manifest == nil {
		return nil, fmt.Errorf("%w: image %s has no manifest in the content store", ErrNotExportable, id)
	}
	ex.id = ex.manifest.Config.Digest
	raw, err := s.readBlob(ex.id)
	if err != nil {
		return nil, fmt.Errorf("%w: config of image %s: %v", ErrNotExportable, id, err)
	}
	ex.rawConfig = raw
	for i, l := range ex.manifest.Layers {
		if !s.hasBlob(l.Digest) {
			return nil, fmt.Errorf("%w: layer %d (%s) of image %s is not in the content store: husk keeps layer blobs of images pulled or imported since it started keeping them, and none of built-in images; remove the image and pull or import it again",
				ErrNotExportable, i, l.Digest, id)
		}
	}
	return ex, nil
}

// archiveTime is the mtime of every member husk writes: the same image
// gives the same archive bytes.
var archiveTime = time.Unix(0, 0)

// writeOCI writes an OCI image layout as a tar: the blobs, then index.json
// with one entry per name, annotated as containerd and docker do (full
// name and tag), so that any of them imports it with its names.
func (s *Store) writeOCI(ctx context.Context, ex *exportImage, w io.Writer) error {
	tw := tar.NewWriter(w)
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: archiveTime, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	if err := writeMember(tw, "blobs/sha256/"+ex.id.Hex, bytes.NewReader(ex.rawConfig), int64(len(ex.rawConfig))); err != nil {
		return err
	}
	seen := make(map[v1.Hash]bool)
	for _, l := range ex.manifest.Layers {
		if seen[l.Digest] {
			continue
		}
		seen[l.Digest] = true
		if err := s.writeBlobMember(ctx, tw, "blobs/sha256/"+l.Digest.Hex, l.Digest); err != nil {
			return err
		}
	}
	md := digestOf(ex.rawManifest)
	if err := writeMember(tw, "blobs/sha256/"+md.Hex, bytes.NewReader(ex.rawManifest), int64(len(ex.rawManifest))); err != nil {
		return err
	}
	desc := v1.Descriptor{MediaType: ex.manifestMT, Size: int64(len(ex.rawManifest)), Digest: md}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	for _, t := range ex.tags {
		d := desc
		d.Annotations = map[string]string{annotationImageName: t}
		if p, err := parseRef(t); err == nil && p.tag != "" {
			d.Annotations[annotationRefName] = p.tag
		}
		idx.Manifests = append(idx.Manifests, d)
	}
	if len(idx.Manifests) == 0 {
		idx.Manifests = []v1.Descriptor{desc}
	}
	rawIndex, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := writeMember(tw, ociIndexFile, bytes.NewReader(rawIndex), int64(len(rawIndex))); err != nil {
		return err
	}
	layout := []byte(`{"imageLayoutVersion":"1.0.0"}`)
	if err := writeMember(tw, ociLayoutFile, bytes.NewReader(layout), int64(len(layout))); err != nil {
		return err
	}
	return tw.Close()
}

func writeMember(tw *tar.Writer, member string, r io.Reader, size int64) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: member, Size: size, Mode: 0o644, ModTime: archiveTime, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write %s: %w", member, err)
	}
	if _, err := io.Copy(tw, r); err != nil {
		return fmt.Errorf("write %s: %w", member, err)
	}
	return nil
}

func (s *Store) writeBlobMember(ctx context.Context, tw *tar.Writer, member string, d v1.Hash) error {
	r, size, err := s.openBlob(d)
	if err != nil {
		return err
	}
	defer r.Close()
	return writeMember(tw, member, ctxReader{ctx, r}, size)
}

// writeDocker writes a `docker save` tarball with go-containerregistry's
// tarball writer, from an image backed by the content store.
func (s *Store) writeDocker(ctx context.Context, ex *exportImage, w io.Writer) error {
	img, err := partial.CompressedToImage(&storedImage{ctx: ctx, s: s, ex: ex})
	if err != nil {
		return err
	}
	refs := make(map[name.Reference]v1.Image)
	for _, t := range ex.tags {
		tag, err := name.NewTag(t)
		if err != nil {
			return fmt.Errorf("name %q: %w", t, err)
		}
		refs[tag] = img
	}
	if len(refs) == 0 {
		// An unnamed image: the writer wants a reference to key it by and
		// lists no RepoTags for one that is not a tag.
		d, err := name.NewDigest("husk/unnamed@" + digestOf(ex.rawManifest).String())
		if err != nil {
			return err
		}
		refs[d] = img
	}
	return tarball.MultiRefWrite(refs, w)
}

// storedImage is a go-containerregistry image whose blobs are read from
// the content store.
type storedImage struct {
	ctx context.Context
	s   *Store
	ex  *exportImage
}

func (i *storedImage) RawConfigFile() ([]byte, error)      { return i.ex.rawConfig, nil }
func (i *storedImage) MediaType() (types.MediaType, error) { return i.ex.manifestMT, nil }
func (i *storedImage) RawManifest() ([]byte, error)        { return i.ex.rawManifest, nil }
func (i *storedImage) LayerByDigest(d v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range i.ex.manifest.Layers {
		if l.Digest == d {
			return &storedLayer{img: i, desc: l}, nil
		}
	}
	return nil, fmt.Errorf("image %s has no layer %s", i.ex.id, d)
}

type storedLayer struct {
	img  *storedImage
	desc v1.Descriptor
}

func (l *storedLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *storedLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *storedLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *storedLayer) Compressed() (io.ReadCloser, error) {
	r, _, err := l.img.s.openBlob(l.desc.Digest)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{ctxReader{l.img.ctx, r}, r}, nil
}
