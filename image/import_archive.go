package image

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/husk-runtime/husk/atomicfile"
)

// archive is a tar spooled to an unlinked file under the store's root,
// read in place: each member is a section of the file, so nothing is
// extracted twice and layers are read side by side with pread.
type archive struct {
	f       *os.File
	entries map[string]archiveEntry // by cleaned member name
}

type archiveEntry struct {
	off, size int64
	link      string // the member a symlink or hard link names, cleaned; "" for a file
}

// maxJSONBlob bounds the manifests, indexes and configs read into memory,
// as registries bound manifests (distribution's limit is 4 MiB).
const maxJSONBlob = 4 << 20

// spool copies r to an unlinked temp file in the content dir: the archive
// must be read in any order (docker writes manifest.json last, layouts list
// blobs before index.json), and a stream from a client allows only one
// pass. Unlinked at once, it cannot outlive a crash. A gzip- or
// zstd-compressed archive (`docker save | gzip`) is decompressed on the way.
func (s *Store) spool(ctx context.Context, r io.Reader) (*os.File, error) {
	f, err := os.CreateTemp(s.contentDir, atomicfile.TempPrefix+"import-*")
	if err != nil {
		return nil, fmt.Errorf("spool archive: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool archive: unlink %s: %w", f.Name(), err)
	}
	src, format, done, err := decompress(bufio.NewReaderSize(r, 64<<10))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: decompress %v", ErrInvalidArchive, err)
	}
	defer done()
	compressed := format != ""
	w := &spoolWriter{f: f}
	if _, err := io.Copy(w, ctxReader{ctx, src}); err != nil {
		f.Close()
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("spool archive: %w", ctx.Err())
		case w.err != nil:
			return nil, fmt.Errorf("spool archive to %s: %w", s.contentDir, w.err)
		case compressed:
			// The client's stream ended or the compressed data is bad;
			// either way the archive as received is not whole.
			return nil, fmt.Errorf("%w: decompress: %v", ErrInvalidArchive, err)
		}
		return nil, fmt.Errorf("receive archive: %w", err)
	}
	return f, nil
}

// openArchive indexes the tar in f. A file that is not a tar, or one cut
// short, fails here, before anything is stored.
func openArchive(ctx context.Context, f *os.File) (*archive, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("read archive: %w", err)
	}
	a := &archive{f: f, entries: make(map[string]archiveEntry)}
	// tar.Reader reads headers block by block straight from f and skips
	// data with Seek, so f's offset after Next is where the member's data
	// starts.
	tr := tar.NewReader(f)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if len(a.entries) == 0 && errors.Is(err, tar.ErrHeader) {
				return nil, fmt.Errorf("%w: not a tar archive (%v)", ErrInvalidArchive, err)
			}
			return nil, fmt.Errorf("%w: damaged or truncated tar after %d members: %v", ErrInvalidArchive, len(a.entries), err)
		}
		name, ok := archiveName(hdr.Name)
		if !ok {
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			off, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				return nil, fmt.Errorf("read archive: %w", err)
			}
			a.entries[name] = archiveEntry{off: off, size: hdr.Size}
		case tar.TypeSymlink:
			// Old `docker save` links a layer.tar seen before to the first
			// copy, relative to the member's directory.
			target := hdr.Linkname
			if !strings.HasPrefix(target, "/") {
				target = path.Join(path.Dir(name), target)
			}
			if t, ok := archiveName(target); ok {
				a.entries[name] = archiveEntry{link: t}
			}
		case tar.TypeLink:
			if t, ok := archiveName(hdr.Linkname); ok {
				a.entries[name] = archiveEntry{link: t}
			}
		}
	}
	if len(a.entries) == 0 {
		return nil, fmt.Errorf("%w: the archive is empty", ErrInvalidArchive)
	}
	return a, nil
}

// archiveName cleans a member name: "./index.json" and "/index.json" are
// both "index.json". The archive root itself has no name.
func archiveName(n string) (string, bool) {
	n = path.Clean("/" + n)[1:]
	return n, n != ""
}

// lookup follows links to the member holding name's data.
func (a *archive) lookup(name string) (archiveEntry, bool) {
	n, ok := archiveName(name)
	if !ok {
		return archiveEntry{}, false
	}
	for range 16 {
		e, ok := a.entries[n]
		if !ok {
			return archiveEntry{}, false
		}
		if e.link == "" {
			return e, true
		}
		n = e.link
	}
	return archiveEntry{}, false
}

func (a *archive) has(name string) bool {
	_, ok := a.lookup(name)
	return ok
}

// open returns the data of member name.
func (a *archive) open(name string) (*io.SectionReader, error) {
	e, ok := a.lookup(name)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not in the archive", ErrInvalidArchive, name)
	}
	return io.NewSectionReader(a.f, e.off, e.size), nil
}

// readSmall reads a JSON member (manifest.json, index.json, a config).
func (a *archive) readSmall(name string) ([]byte, error) {
	sr, err := a.open(name)
	if err != nil {
		return nil, err
	}
	if sr.Size() > maxJSONBlob {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than the %d a manifest or config may have", ErrInvalidArchive, name, sr.Size(), maxJSONBlob)
	}
	data, err := io.ReadAll(sr)
	if err != nil {
		return nil, fmt.Errorf("read %s from the archive: %w", name, err)
	}
	return data, nil
}

// spoolWriter tells a failure to write the spool (a full disk) from one
// to read the archive.
type spoolWriter struct {
	f   *os.File
	err error
}

func (w *spoolWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

// ctxReader stops a long copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
