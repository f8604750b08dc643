package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func export(t *testing.T, s *Store, ref string, f ArchiveFormat) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Export(context.Background(), ref, f, &buf); err != nil {
		t.Fatalf("Export %s as %s: %v", ref, f, err)
	}
	return buf.Bytes()
}

func members(t *testing.T, archive []byte) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, hdr.Name)
	}
}

// A pulled image exported in either format and imported into another
// store keeps its id, its layer digests and (OCI) its repo digest, and
// unpacks to the same files.
func TestExportImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	host := newRegistry(t, nil)
	img := imageOf(t,
		layerOf(t, []entry{{name: "bin/", typ: '5', mode: 0o755}, {name: "bin/sh", body: "#!", mode: 0o755}}),
		layerOf(t, []entry{{name: "etc/", typ: '5', mode: 0o755}, {name: "etc/hostname", body: "x"}}),
	)
	ref := host + "/round/trip:1"
	mdig := push(t, ref, img)
	src := newStore(t, Config{})
	pulled, err := src.Pull(ctx, ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantLayers := map[string]bool{}
	ls, _ := img.Layers()
	for _, l := range ls {
		d, _ := l.Digest()
		wantLayers[d.String()] = true
	}

	for _, format := range []ArchiveFormat{FormatOCI, FormatDocker} {
		t.Run(format.String(), func(t *testing.T) {
			arch := export(t, src, ref, format)
			if again := export(t, src, ref, format); !bytes.Equal(arch, again) {
				t.Errorf("two exports of one image differ")
			}
			ms := members(t, arch)
			switch format {
			case FormatOCI:
				if !slices.Contains(ms, ociLayoutFile) || !slices.Contains(ms, ociIndexFile) || !slices.Contains(ms, "blobs/sha256/"+mdig.Hex) {
					t.Errorf("OCI archive members %v", ms)
				}
			case FormatDocker:
				if !slices.Contains(ms, dockerManifestFile) || slices.Contains(ms, ociLayoutFile) {
					t.Errorf("docker archive members %v", ms)
				}
			}
			readByGGCR(t, arch, format)
			dst := newStore(t, Config{})
			got, err := dst.Import(ctx, bytes.NewReader(arch))
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			if len(got) != 1 || got[0].ID != pulled.ID || !slices.Equal(got[0].RepoTags, pulled.RepoTags) {
				t.Fatalf("imported %+v, want id %s tags %v", got, pulled.ID, pulled.RepoTags)
			}
			if format == FormatOCI && !slices.Equal(got[0].RepoDigests, pulled.RepoDigests) {
				t.Errorf("repo digests %v, want %v", got[0].RepoDigests, pulled.RepoDigests)
			}
			for d := range wantLayers {
				h, _ := v1.NewHash(d)
				if !dst.hasBlob(h) {
					t.Errorf("layer blob %s not in the importing store: digests changed", d)
				}
			}
			if b, err := os.ReadFile(filepath.Join(got[0].Layers[1], "etc/hostname")); err != nil || string(b) != "x" {
				t.Errorf("etc/hostname = %q, %v", b, err)
			}
			// And back out again: the same bytes.
			if again := export(t, dst, ref, format); format == FormatOCI && !bytes.Equal(arch, again) {
				t.Errorf("export of the imported image differs from the original export")
			}
		})
	}

	// Removing the image takes its kept layer blobs with it.
	if err := src.Remove(ref); err != nil {
		t.Fatal(err)
	}
	assertStoreEmpty(t, src)
}

// readByGGCR reads an exported archive with go-containerregistry's own
// readers and validates the image in it (digests, diff ids, sizes): the
// archive is usable by other tools, not only by husk's import.
func readByGGCR(t *testing.T, arch []byte, format ArchiveFormat) {
	t.Helper()
	var img v1.Image
	switch format {
	case FormatDocker:
		var err error
		img, err = tarball.Image(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(arch)), nil }, nil)
		if err != nil {
			t.Fatalf("tarball.Image: %v", err)
		}
	case FormatOCI:
		dir := t.TempDir()
		tr := tar.NewReader(bytes.NewReader(arch))
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, hdr.Name)
			if hdr.Typeflag == tar.TypeDir {
				os.MkdirAll(p, 0o755)
				continue
			}
			data, _ := io.ReadAll(tr)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		idx, err := layout.ImageIndexFromPath(dir)
		if err != nil {
			t.Fatalf("layout: %v", err)
		}
		im, err := idx.IndexManifest()
		if err != nil || len(im.Manifests) == 0 {
			t.Fatalf("index.json: %v, %+v", err, im)
		}
		if img, err = idx.Image(im.Manifests[0].Digest); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != len(cf.RootFS.DiffIDs) {
		t.Fatalf("%d layers, %v; config lists %d", len(layers), err, len(cf.RootFS.DiffIDs))
	}
	for i, l := range layers {
		d, _ := l.Digest()
		if got := hashOf(t, l.Compressed); got != d {
			t.Errorf("%s archive: layer %d blob has digest %s, manifest says %s", format, i, got, d)
		}
		if got := hashOf(t, l.Uncompressed); got != cf.RootFS.DiffIDs[i] {
			t.Errorf("%s archive: layer %d has diff id %s, config says %s", format, i, got, cf.RootFS.DiffIDs[i])
		}
	}
}

func hashOf(t *testing.T, open func() (io.ReadCloser, error)) v1.Hash {
	t.Helper()
	rc, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h, _, err := v1.SHA256(rc)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Export by id names the image by all its tags; by tag, by that tag.
func TestExportNames(t *testing.T) {
	ctx := context.Background()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	img = imageOf(t, mustLayers(t, img)...)
	arch := dockerArchive(t, map[string]v1.Image{"example.com/app/a:1": img, "example.com/app/a:2": img})
	s := newStore(t, Config{})
	got, err := s.Import(ctx, bytes.NewReader(arch))
	if err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string][]string{
		got[0].ID:             {"example.com/app/a:1", "example.com/app/a:2"},
		"example.com/app/a:2": {"example.com/app/a:2"},
	} {
		dst := newStore(t, Config{})
		imported, err := dst.Import(ctx, bytes.NewReader(export(t, s, ref, FormatOCI)))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(imported[0].RepoTags, want) || imported[0].ID != got[0].ID {
			t.Errorf("export of %s imported as %s %v, want %v", ref, imported[0].ID, imported[0].RepoTags, want)
		}
	}
}

// An image with no name exports and imports by id alone.
func TestExportUnnamed(t *testing.T) {
	ctx := context.Background()
	img := imageOf(t, layerOf(t, []entry{{name: "x", body: "x"}}))
	s := newStore(t, Config{})
	got, err := s.Import(ctx, bytes.NewReader(ociArchive(t, func(p layout.Path) { appendImage(t, p, img) })))
	if err != nil || len(got) != 1 || len(got[0].RepoTags) != 0 {
		t.Fatalf("import unnamed: %+v, %v", got, err)
	}
	for _, f := range []ArchiveFormat{FormatOCI, FormatDocker} {
		arch := export(t, s, got[0].ID, f)
		readByGGCR(t, arch, f)
		again, err := newStore(t, Config{}).Import(ctx, bytes.NewReader(arch))
		if err != nil || len(again) != 1 || again[0].ID != got[0].ID || len(again[0].RepoTags) != 0 {
			t.Errorf("%s: reimported %+v, %v; want %s unnamed", f, again, err, got[0].ID)
		}
	}
}

func mustLayers(t *testing.T, img v1.Image) []v1.Layer {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func TestExportErrors(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, Config{})
	if err := s.Export(ctx, "example.com/none:1", FormatOCI, io.Discard); !errors.Is(err, ErrNotFound) {
		t.Errorf("export of a missing image: %v, want ErrNotFound", err)
	}
	// The built-in pause is unpacked from the binary: no layer blob.
	layer := tarBytes(t, []entry{{name: "pause", body: "x", mode: 0o755}})
	if _, err := s.ImportBuiltin(ctx, "localhost/husk/pause:1", layer, v1.Config{Entrypoint: []string{"/pause"}}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err := s.Export(ctx, "localhost/husk/pause:1", FormatOCI, &buf)
	if !errors.Is(err, ErrNotExportable) || !strings.Contains(err.Error(), "not in the content store") {
		t.Errorf("export of the built-in pause: %v, want ErrNotExportable", err)
	}
	if buf.Len() != 0 {
		t.Errorf("a failed export wrote %d bytes", buf.Len())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.holds) != 0 {
		t.Errorf("holds left: %v", s.holds)
	}
}
