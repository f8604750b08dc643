package image

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/husk-runtime/husk/atomicfile"
)

// Layer blobs are kept in the content store as distributed (compressed as
// the registry or archive had them), beside the unpacked layers, so that
// an export writes an image out byte for byte: same manifest, same
// digests, same id. That costs the compressed size of each layer again on
// disk, paid for images pulled or imported since husk kept them; an image
// whose layer blobs are missing cannot be exported (ErrNotExportable).

// blobWriter writes a blob to a temp file in the content dir, hashing it
// when asked to; commit checks that hash and puts the blob in place,
// durably; place puts it in place for a caller that has checked the bytes
// and marked the blob unflushed (flush.go).
type blobWriter struct {
	s   *Store
	f   *os.File
	h   hash.Hash // nil: not hashed
	err error
}

func (s *Store) newBlobWriter(hashed bool) (*blobWriter, error) {
	f, err := os.CreateTemp(s.contentDir, atomicfile.TempPrefix+"blob-*")
	if err != nil {
		return nil, fmt.Errorf("create blob in %s: %w", s.contentDir, err)
	}
	w := &blobWriter{s: s, f: f}
	if hashed {
		w.h = sha256.New()
	}
	return w, nil
}

func (w *blobWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.h != nil {
		w.h.Write(p)
	}
	n, err := w.f.Write(p)
	if err != nil {
		w.err = fmt.Errorf("write %s: %w", w.f.Name(), err)
	}
	return n, w.err
}

// commit checks the digest, then fsyncs and renames the blob into place.
func (w *blobWriter) commit(d v1.Hash) error {
	defer w.abort()
	if w.err != nil {
		return w.err
	}
	if got := hashString(w.h); got != d.String() {
		return fmt.Errorf("blob %s: content has digest %s", d, got)
	}
	if w.s.hasBlob(d) {
		return nil // same digest, same bytes: nothing to sync
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", w.f.Name(), err)
	}
	if err := w.rename(d); err != nil {
		return err
	}
	// The rename is durable once the directory is.
	if dir, err := os.Open(w.s.contentDir); err == nil {
		err = dir.Sync()
		dir.Close()
		if err != nil {
			return fmt.Errorf("fsync %s: %w", w.s.contentDir, err)
		}
	}
	return nil
}

// place renames the blob into place as d, unchecked and unsynced.
func (w *blobWriter) place(d v1.Hash) error {
	defer w.abort()
	if w.err != nil {
		return w.err
	}
	return w.rename(d)
}

func (w *blobWriter) rename(d v1.Hash) error {
	p, err := w.s.blobPath(d)
	if err != nil {
		return err
	}
	if _, err := os.Stat(p); err == nil {
		return nil // same digest, same bytes
	}
	if err := w.f.Chmod(0o644); err != nil {
		return fmt.Errorf("chmod %s: %w", w.f.Name(), err)
	}
	if err := os.Rename(w.f.Name(), p); err != nil {
		return fmt.Errorf("rename %s to %s: %w", w.f.Name(), p, err)
	}
	return nil
}

// abort removes the temp file, if it was not renamed, and closes it.
func (w *blobWriter) abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

func (s *Store) hasBlob(d v1.Hash) bool {
	p, err := s.blobPath(d)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// keepingReader copies what is read through it to a blob. A failed write
// only loses the kept copy (w.err says so); the read goes on.
type keepingReader struct {
	r io.Reader
	w *blobWriter
}

func (k *keepingReader) Read(p []byte) (int, error) {
	n, err := k.r.Read(p)
	if n > 0 {
		_, _ = k.w.Write(p[:n])
	}
	return n, err
}

// ensureLayerBlob stores the layer blob with digest d from open unless the
// content store has it, checking both its digest and, decompressed, its
// diff id: a blob kept without an unpack must still be the layer the
// image's config names.
func (s *Store) ensureLayerBlob(ctx context.Context, d, diffID v1.Hash, open func() (io.ReadCloser, error)) error {
	if s.hasBlob(d) {
		return nil
	}
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	w, err := s.newBlobWriter(true)
	if err != nil {
		return err
	}
	got, err := diffIDOf(io.TeeReader(ctxReader{ctx, rc}, w))
	switch {
	case w.err != nil:
		w.abort()
		return w.err
	case err != nil:
		w.abort()
		return fmt.Errorf("layer %s: %w", d, err)
	case got != diffID:
		w.abort()
		return fmt.Errorf("layer %s: diff id mismatch: got %s, want %s", d, got, diffID)
	}
	return w.commit(d)
}

// diffIDOf reads a layer blob to its end and returns the digest of its
// uncompressed content.
func diffIDOf(r io.Reader) (v1.Hash, error) {
	br := bufio.NewReaderSize(r, blobReadSize) // as unpackVerified's, for the same reason
	plain, _, done, err := decompress(br)
	if err != nil {
		return v1.Hash{}, err
	}
	defer done()
	h, _, err := v1.SHA256(plain)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("decompress: %w", err)
	}
	// Whatever follows the compressed stream is part of the blob too.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return v1.Hash{}, fmt.Errorf("read blob: %w", err)
	}
	return h, nil
}

// verifyingReader reads a stored blob and fails at its end if the bytes
// are not the digest's: an export never passes on a blob the disk damaged.
type verifyingReader struct {
	f *os.File
	h hash.Hash
	d v1.Hash
}

func (s *Store) openBlob(d v1.Hash) (*verifyingReader, int64, error) {
	p, err := s.blobPath(d)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, fmt.Errorf("blob %s: %w", d, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("blob %s: %w", d, err)
	}
	return &verifyingReader{f: f, h: sha256.New(), d: d}, fi.Size(), nil
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	if errors.Is(err, io.EOF) {
		if got := hashString(v.h); got != v.d.String() {
			return n, fmt.Errorf("blob %s in the content store is corrupt: it has digest %s", v.d, got)
		}
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.f.Close() }
