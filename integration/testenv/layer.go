package testenv

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Epoch is the fixed modification time of every layer entry, so layers are
// byte-for-byte reproducible.
var Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

type entryKind int

const (
	kindDir entryKind = iota
	kindFile
	kindSymlink
	kindHardlink
)

type entry struct {
	kind     entryKind
	mode     int64 // permission bits incl. setuid/sticky
	uid, gid int
	data     []byte
	link     string // symlink target or hard-link target (layer-relative, no leading slash)
}

// layerBuilder collects file system entries and writes them as a
// deterministic tar: directories, files and symlinks sorted by path, then
// hard links sorted by path (so a link's target always comes first).
type layerBuilder struct {
	entries map[string]*entry
}

func newLayerBuilder() *layerBuilder { return &layerBuilder{entries: map[string]*entry{}} }

func clean(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }

func (b *layerBuilder) parents(p string) {
	for d := path.Dir(p); d != "." && d != "/" && d != ""; d = path.Dir(d) {
		if _, ok := b.entries[d]; !ok {
			b.entries[d] = &entry{kind: kindDir, mode: 0o755}
		}
	}
}

func (b *layerBuilder) Dir(p string, mode int64) {
	p = clean(p)
	b.parents(p)
	b.entries[p] = &entry{kind: kindDir, mode: mode}
}

func (b *layerBuilder) File(p string, mode int64, data []byte) {
	p = clean(p)
	b.parents(p)
	b.entries[p] = &entry{kind: kindFile, mode: mode, data: data}
}

func (b *layerBuilder) Symlink(p, target string) {
	p = clean(p)
	b.parents(p)
	b.entries[p] = &entry{kind: kindSymlink, mode: 0o777, link: target}
}

// Hardlink adds p as a hard link to target, which must be a regular file in
// the same layer.
func (b *layerBuilder) Hardlink(p, target string) {
	p, target = clean(p), clean(target)
	b.parents(p)
	b.entries[p] = &entry{kind: kindHardlink, link: target}
}

// Tar returns the uncompressed tar stream.
func (b *layerBuilder) Tar() ([]byte, error) {
	var first, links []string
	for p, e := range b.entries {
		if e.kind == kindHardlink {
			links = append(links, p)
		} else {
			first = append(first, p)
		}
	}
	sort.Strings(first)
	sort.Strings(links)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range append(first, links...) {
		e := b.entries[p]
		h := &tar.Header{
			Name:    p,
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.gid,
			ModTime: Epoch,
			Format:  tar.FormatPAX,
		}
		switch e.kind {
		case kindDir:
			h.Typeflag = tar.TypeDir
			h.Name = p + "/"
		case kindFile:
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.data))
		case kindSymlink:
			h.Typeflag = tar.TypeSymlink
			h.Linkname = e.link
		case kindHardlink:
			t, ok := b.entries[e.link]
			if !ok || t.kind != kindFile {
				return nil, fmt.Errorf("hard link %s: target %s is not a regular file in this layer", p, e.link)
			}
			h.Typeflag = tar.TypeLink
			h.Linkname = e.link
			// The link entry carries the target's mode and owner: an unpacker
			// that applies the entry's mode to the shared inode must not make
			// the target unexecutable.
			h.Mode, h.Uid, h.Gid = t.mode, t.uid, t.gid
		}
		// PAX without extended records for these plain headers produces a
		// USTAR-compatible header; it only emits records when needed.
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if e.kind == kindFile {
			if _, err := tw.Write(e.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Layer returns a gzip-compressed layer of the given media type
// (types.DockerLayer or types.OCILayer).
func (b *layerBuilder) Layer(mt types.MediaType) (v1.Layer, error) {
	data, err := b.Tar()
	if err != nil {
		return nil, err
	}
	return layerFromTar(data, mt)
}

func layerFromTar(data []byte, mt types.MediaType) (v1.Layer, error) {
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(mt), tarball.WithCompressedCaching)
}
