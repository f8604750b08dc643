package image

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// zstdLayerOf makes a zstd-compressed OCI layer from crafted entries, as
// `buildah push --compression-format zstd` publishes them.
func zstdLayerOf(t *testing.T, entries []entry) v1.Layer {
	t.Helper()
	data := tarBytes(t, entries)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd), tarball.WithCompressedCaching)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// dirNames lists dir (nil when it does not exist), but for the layer
// index file: its entries are checked on their own.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Name() != layerIndexFile {
			out = append(out, e.Name())
		}
	}
	return out
}

// An OCI image whose layers are zstd-compressed pulls and unpacks like a
// gzip one; a layer blob corrupted on the way is refused with an error
// naming the layer, and the failed pull leaves nothing in the store.
func TestPullZstdLayers(t *testing.T) {
	ctx := context.Background()
	layers := []v1.Layer{
		zstdLayerOf(t, []entry{{name: "bin/", typ: '5', mode: 0o755}, {name: "bin/tool", body: "#!/bin/sh\necho zstd\n", mode: 0o755}}),
		zstdLayerOf(t, []entry{{name: "etc/", typ: '5', mode: 0o755}, {name: "etc/motd", body: strings.Repeat("zstd layer two\n", 1000)}}),
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img := imageOf(t, layers...)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.AppendLayers(base, layers...)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	// What this test is about: the manifest says zstd, and the blobs are.
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range m.Layers {
		if l.MediaType != types.OCILayerZStd {
			t.Fatalf("layer %d media type %s, want %s", i, l.MediaType, types.OCILayerZStd)
		}
		rc, err := layers[i].Compressed()
		if err != nil {
			t.Fatal(err)
		}
		head := make([]byte, 4)
		_, err = io.ReadFull(rc, head)
		rc.Close()
		if err != nil || !bytes.Equal(head, zstdMagic) {
			t.Fatalf("layer %d blob starts with %x (%v), want the zstd magic %x", i, head, err, zstdMagic)
		}
	}
	bad := m.Layers[1].Digest

	// mode is how the registry serves layer bad: "" as stored, or
	// "with a byte flipped" in its zstd stream, or "cut short" (with a
	// Content-Length that says so).
	var mode atomic.Value
	mode.Store("")
	host := newRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			how := mode.Load().(string)
			if how == "" || r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+bad.String()) {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			body := bytes.Clone(rec.Body.Bytes())
			switch how {
			case "with a byte flipped":
				body[len(body)/2] ^= 0xff
			case "cut short":
				body = body[:len(body)/2]
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.Header().Del("Content-Length")
			w.WriteHeader(rec.Code)
			_, _ = w.Write(body)
		})
	})
	ref := host + "/test/zstd:1"
	push(t, ref, img)

	s := newStore(t, Config{})
	before := map[string][]string{"content": dirNames(t, s.contentDir), "layers": dirNames(t, s.layersDir)}
	for _, how := range []string{"with a byte flipped", "cut short"} {
		mode.Store(how)
		_, err := s.Pull(ctx, ref, nil)
		if err == nil || !strings.Contains(err.Error(), "layer "+bad.String()) {
			t.Fatalf("pull with layer %s served %s: err = %v, want an error naming the layer", bad, how, err)
		}
		t.Logf("%s: %v", how, err)
		after := map[string][]string{"content": dirNames(t, s.contentDir), "layers": dirNames(t, s.layersDir)}
		for dir := range before {
			if !slices.Equal(before[dir], after[dir]) {
				t.Errorf("pull with layer %s served %s left %s dir with %v, was %v", bad, how, dir, after[dir], before[dir])
			}
		}
		s.mu.Lock()
		indexed := len(s.layers.Layers)
		s.mu.Unlock()
		if indexed != 0 {
			t.Errorf("pull with layer %s served %s left %d layers in the layer index", bad, how, indexed)
		}
		if len(s.List()) != 0 {
			t.Fatalf("pull with layer %s served %s recorded an image", bad, how)
		}
	}

	mode.Store("")
	got, err := s.Pull(ctx, ref, nil)
	if err != nil {
		t.Fatalf("pull of the zstd image: %v", err)
	}
	if len(got.Layers) != 2 {
		t.Fatalf("Layers = %v, want 2", got.Layers)
	}
	for _, c := range []struct {
		layer      int
		path, want string
		mode       os.FileMode
	}{
		{0, "bin/tool", "#!/bin/sh\necho zstd\n", 0o755},
		{1, "etc/motd", strings.Repeat("zstd layer two\n", 1000), 0o644},
	} {
		p := filepath.Join(got.Layers[c.layer], c.path)
		b, err := os.ReadFile(p)
		if err != nil || string(b) != c.want {
			t.Errorf("layer %d %s: %d bytes, %v; want %d bytes", c.layer, c.path, len(b), err, len(c.want))
			continue
		}
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != c.mode {
			t.Errorf("layer %d %s: mode %v, %v; want %v", c.layer, c.path, fi.Mode().Perm(), err, c.mode)
		}
	}
	// The layer blobs are kept as pulled (zstd), for export.
	for _, l := range m.Layers {
		if _, err := s.readBlob(l.Digest); err != nil {
			t.Errorf("layer blob %s not kept: %v", l.Digest, err)
		}
	}
}
