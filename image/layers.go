package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/husk-runtime/husk/atomicfile"
)

const layerIndexFile = "index.json"

// layerIndex maps chain ids to the short directory names under Root/layers.
// Short names keep overlay's lowerdir option of a deep image under the
// kernel's one-page limit for mount options.
type layerIndex struct {
	Next   int                   `json:"next"`
	Layers map[string]layerEntry `json:"layers"` // by chain id
	// UnflushedBlobs are the layer blobs put in place that may not be on
	// disk yet: digest -> the boot they were written in (flush.go).
	UnflushedBlobs map[string]string `json:"unflushedBlobs,omitempty"`
}

type layerEntry struct {
	N      int    `json:"n"`
	DiffID string `json:"diffID"`
	Size   int64  `json:"size"` // bytes of regular files unpacked
	// Unflushed is the boot the layer was unpacked in while it may not
	// be on disk yet; "" once it is (flush.go).
	Unflushed string `json:"unflushed,omitempty"`
}

// loadLayers reads the layer index and removes layer directories a crash
// left behind: temp dirs, and dirs renamed into place whose index entry was
// never written.
func (s *Store) loadLayers(ctx context.Context) error {
	s.layers = layerIndex{Next: 1, Layers: make(map[string]layerEntry)}
	p := filepath.Join(s.layersDir, layerIndexFile)
	data, err := os.ReadFile(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read layer index %s: %w", p, err)
	default:
		if err := json.Unmarshal(data, &s.layers); err != nil {
			return fmt.Errorf("parse layer index %s: %w", p, err)
		}
		if s.layers.Layers == nil {
			s.layers.Layers = make(map[string]layerEntry)
		}
	}
	if err := atomicfile.RemoveTemps(s.layersDir); err != nil {
		return err
	}
	s.mu.Lock()
	changed, err := s.recoverUnflushed(ctx)
	if err == nil && changed {
		err = s.saveLayersLocked()
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	known := make(map[string]bool)
	for chain, e := range s.layers.Layers {
		name := strconv.Itoa(e.N)
		if _, err := os.Stat(filepath.Join(s.layersDir, name)); err != nil {
			slog.WarnContext(ctx, "layer missing from disk, dropping it from the index", "chainID", chain, "dir", name)
			delete(s.layers.Layers, chain)
			continue
		}
		known[name] = true
	}
	ents, err := os.ReadDir(s.layersDir)
	if err != nil {
		return fmt.Errorf("read %s: %w", s.layersDir, err)
	}
	for _, e := range ents {
		if e.Name() == layerIndexFile || e.Name() == emptyLayerDir || known[e.Name()] {
			continue
		}
		if n, err := strconv.Atoi(e.Name()); err == nil && n >= s.layers.Next {
			s.layers.Next = n + 1
		}
		p := filepath.Join(s.layersDir, e.Name())
		slog.WarnContext(ctx, "removing unindexed layer directory", "dir", p)
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove %s: %w", p, err)
		}
	}
	return nil
}

// saveLayersLocked writes the layer index. s.mu must be held.
func (s *Store) saveLayersLocked() error {
	data, err := json.MarshalIndent(s.layers, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(s.layersDir, layerIndexFile), data, 0o600)
}

// layerDirLocked returns the directory of an unpacked layer. s.mu must be held.
func (s *Store) layerDirLocked(chainID string) (string, bool) {
	e, ok := s.layers.Layers[chainID]
	if !ok {
		return "", false
	}
	return filepath.Join(s.layersDir, strconv.Itoa(e.N)), true
}

// ensureLayer makes sure the layer with the given chain id is unpacked,
// reading it from open only when it is not. open returns the layer as
// distributed (compressed or not); its bytes are checked against digest and,
// once decompressed, against diffID. With keep, those bytes are also kept
// as the blob (see export_blobs.go), unless the store has it: one read
// serves both.
func (s *Store) ensureLayer(ctx context.Context, chainID string, diffID, digest v1.Hash, open func() (io.ReadCloser, error), keep bool) (string, error) {
	// lt reports this layer's progress to pull watchers (progress.go);
	// nil, doing nothing, outside a pull.
	lt := layerTrackFrom(ctx)
	s.mu.Lock()
	dir, ok := s.layerDirLocked(chainID)
	s.mu.Unlock()
	if ok {
		lt.set(LayerAlreadyPresent)
		return dir, nil
	}

	// Another pull may be unpacking this layer: wait for it (the layer is
	// then downloaded once) without counting the wait as a stalled
	// registry, and give up if this pull is cancelled meanwhile.
	unlock, err := s.chainMu.lockCtx(ctx, chainID, func() func() {
		lt.set(LayerWaitingForOtherPull)
		return pauseStall(ctx)
	})
	if err != nil {
		return "", fmt.Errorf("layer %s: wait for another pull of it: %w", digest, err)
	}
	defer unlock()
	// Another pull may have unpacked it while we waited.
	s.mu.Lock()
	dir, ok = s.layerDirLocked(chainID)
	s.mu.Unlock()
	if ok {
		lt.set(LayerDone)
		return dir, nil
	}

	tmp, err := os.MkdirTemp(s.layersDir, atomicfile.TempPrefix+"layer-")
	if err != nil {
		return "", fmt.Errorf("layer %s: %w", digest, err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	// The layer root becomes the container's "/" when this is the top
	// layer; a tar without a "./" entry must not leave it 0700.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", fmt.Errorf("layer %s: %w", digest, err)
	}
	var blob *blobWriter
	if keep && !s.hasBlob(digest) {
		// Not hashed again: unpackVerified checks these same bytes
		// against digest, and the blob is placed only if it did.
		if blob, err = s.newBlobWriter(false); err != nil {
			return "", err
		}
		defer blob.abort()
	}
	rc, err := lt.counting(open)() // counts bytes received, for watchers
	if err != nil {
		return "", fmt.Errorf("fetch layer %s: %w", digest, err)
	}
	defer rc.Close()
	// How long the unpack waited for the layer's bytes, apart from the
	// time it spent writing them: the pull benchmark reports download and
	// unpack rates from these (debug log below).
	start := time.Now()
	wr := &waitReader{r: rc}
	var r io.Reader = wr
	if blob != nil {
		r = &keepingReader{r: wr, w: blob}
	}
	size, err := unpackVerified(ctx, s.log, r, tmp, digest, diffID)
	if err != nil {
		return "", fmt.Errorf("layer %s: %w", digest, err)
	}
	lt.set(LayerUnpacking)

	// Not synced: the layer and its blob are marked instead, and reach
	// the disk with the next flush (flush.go).
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.layers.Next
	final := filepath.Join(s.layersDir, strconv.Itoa(n))
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("layer %s: %w", digest, err)
	}
	s.layers.Next++
	s.markLayerLocked(chainID, layerEntry{N: n, DiffID: diffID.String(), Size: size})
	kept := blob != nil && blob.err == nil // every byte written
	if kept {
		s.markBlobLocked(digest)
	}
	if err := s.saveLayersLocked(); err != nil {
		delete(s.layers.Layers, chainID)
		os.RemoveAll(final)
		return "", err
	}
	done = true
	if kept {
		// Marked first: a blob in place is never unmarked before it is
		// on disk.
		if err := blob.place(digest); err != nil {
			// The layer is unpacked and usable; only exporting the
			// image will say its blob is missing.
			s.log.Warn("keeping layer blob failed", "digest", digest, "error", err)
		}
	}
	lt.set(LayerDone)
	slog.DebugContext(ctx, "layer unpacked", "digest", digest, "chainID", chainID, "dir", final, "bytes", size,
		"compressed_bytes", wr.n, "took", time.Since(start), "read_wait", wr.wait)
	return final, nil
}

// chainIDs computes the chain id of each layer from the diff ids, as the
// OCI image spec defines it: ChainID(L0) = DiffID(L0),
// ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
func chainIDs(diffIDs []v1.Hash) []string {
	out := make([]string, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d.String()
			continue
		}
		out[i] = digestOf([]byte(out[i-1] + " " + d.String())).String()
	}
	return out
}

// keyedMutex serializes work per key (here: per chain id) without holding
// one lock over all of it.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	held chan struct{} // holds one token while the key is locked
	refs int
}

// lockCtx locks key; it gives up with ctx's cause when ctx ends first. When
// the key is held, it calls waiting (if not nil) before it blocks and the
// function waiting returned once the wait is over.
func (k *keyedMutex) lockCtx(ctx context.Context, key string, waiting func() (done func())) (unlock func(), err error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = make(map[string]*keyedEntry)
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{held: make(chan struct{}, 1)}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	unlock = func() {
		<-e.held
		release()
	}
	select {
	case e.held <- struct{}{}:
		return unlock, nil
	default:
	}
	if waiting != nil {
		done := waiting()
		defer done()
	}
	select {
	case e.held <- struct{}{}:
		return unlock, nil
	case <-ctx.Done():
		release()
		return nil, context.Cause(ctx)
	}
}

// waitReader counts the bytes read through it and the time spent waiting
// in Read (the network, for a layer being pulled).
type waitReader struct {
	r    io.Reader
	n    int64
	wait time.Duration
}

func (w *waitReader) Read(p []byte) (int, error) {
	t := time.Now()
	n, err := w.r.Read(p)
	w.wait += time.Since(t)
	w.n += int64(n)
	return n, err
}
