package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// tarDir makes a tar of dir's files, as `tar -C dir -cf - .` would.
func tarDir(t testing.TB, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = "./" + filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = tw.Write(data)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ociArchive writes an OCI layout with fill and returns it as a tar.
func ociArchive(t testing.TB, fill func(p layout.Path)) []byte {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	fill(p)
	return tarDir(t, dir)
}

func named(n string) layout.Option {
	return layout.WithAnnotations(map[string]string{annotationImageName: n, annotationRefName: n[strings.LastIndex(n, ":")+1:]})
}

func appendImage(t testing.TB, p layout.Path, img v1.Image, opts ...layout.Option) {
	t.Helper()
	if err := p.AppendImage(img, opts...); err != nil {
		t.Fatal(err)
	}
}

func dockerArchive(t testing.TB, refs map[string]v1.Image) []byte {
	t.Helper()
	m := make(map[name.Reference]v1.Image)
	for r, img := range refs {
		tag, err := name.NewTag(r)
		if err != nil {
			t.Fatal(err)
		}
		m[tag] = img
	}
	var buf bytes.Buffer
	if err := tarball.MultiRefWrite(m, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func configName(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func manifestDigest(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func readLayerFile(t *testing.T, img Image, layer int, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(img.Layers[layer], p))
	if err != nil {
		t.Fatalf("layer %d %s: %v", layer, p, err)
	}
	return string(b)
}

// assertStoreEmpty checks that a store holds no image and nothing a
// failed import could have left: blobs, layer dirs, temp files.
func assertStoreEmpty(t *testing.T, s *Store) {
	t.Helper()
	if imgs := s.List(); len(imgs) != 0 {
		t.Errorf("images recorded: %v", imgs)
	}
	for _, dir := range []string{s.contentDir, s.layersDir, s.imagesDir} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.Name() == layerIndexFile || e.Name() == emptyLayerDir {
				continue
			}
			t.Errorf("left in %s: %s", dir, e.Name())
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.layers.Layers) != 0 || len(s.holds) != 0 {
		t.Errorf("layer index %v, holds %v: want none", s.layers.Layers, s.holds)
	}
}

func TestImportOCILayout(t *testing.T) {
	ctx := context.Background()
	base := layerOf(t, []entry{{name: "bin/", typ: '5', mode: 0o755}, {name: "bin/sh", body: "#!", mode: 0o755}})
	app := imageOf(t, base, layerOf(t, []entry{{name: "app", body: "one"}}))
	other := imageOf(t, base, layerOf(t, []entry{{name: "app", body: "two"}}))
	// A multi-platform index: the image for this node is picked.
	foreign := mutate.MediaType(imageOf(t, layerOf(t, []entry{{name: "arch", body: "other"}})), types.OCIManifestSchema1)
	native := imageOf(t, layerOf(t, []entry{{name: "arch", body: "native"}}))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: foreign, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "s390x-none"}}},
		mutate.IndexAddendum{Add: native, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: platform().Architecture}}},
	)
	arch := ociArchive(t, func(p layout.Path) {
		appendImage(t, p, app, named("example.com/app:1"))
		appendImage(t, p, app, layout.WithAnnotations(map[string]string{annotationRefName: "busybox:1"})) // a full name in ref.name
		appendImage(t, p, other, layout.WithAnnotations(map[string]string{annotationRefName: "latest"}))  // a bare tag: no name
		if err := p.AppendIndex(idx, named("example.com/multi:2")); err != nil {
			t.Fatal(err)
		}
	})
	s := newStore(t, Config{})
	got, err := s.Import(ctx, bytes.NewReader(arch))
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if len(got) != 3 {
		t.Fatalf("imported %d images, want 3: %+v", len(got), got)
	}
	if got[0].ID != configName(t, app) {
		t.Errorf("image 0 id = %s, want %s", got[0].ID, configName(t, app))
	}
	if want := []string{"docker.io/library/busybox:1", "example.com/app:1"}; !slices.Equal(got[0].RepoTags, want) {
		t.Errorf("image 0 tags = %v, want %v", got[0].RepoTags, want)
	}
	md := manifestDigest(t, app)
	if want := []string{"docker.io/library/busybox@" + md, "example.com/app@" + md}; !slices.Equal(got[0].RepoDigests, want) {
		t.Errorf("image 0 digests = %v, want %v", got[0].RepoDigests, want)
	}
	if readLayerFile(t, got[0], 1, "app") != "one" || readLayerFile(t, got[1], 1, "app") != "two" {
		t.Errorf("app layers hold the wrong files")
	}
	if got[0].Layers[0] != got[1].Layers[0] {
		t.Errorf("shared base layer unpacked twice: %s, %s", got[0].Layers[0], got[1].Layers[0])
	}
	if got[1].ID != configName(t, other) || len(got[1].RepoTags) != 0 {
		t.Errorf("image 1 = %s %v, want %s unnamed", got[1].ID, got[1].RepoTags, configName(t, other))
	}
	if _, err := s.Resolve(configName(t, other)); err != nil {
		t.Errorf("unnamed image not found by id: %v", err)
	}
	idxDigest, _ := idx.Digest()
	if got[2].ID != configName(t, native) || readLayerFile(t, got[2], 0, "arch") != "native" {
		t.Errorf("index resolved to %s, want %s (native)", got[2].ID, configName(t, native))
	}
	if want := []string{"example.com/multi@" + idxDigest.String()}; !slices.Equal(got[2].RepoDigests, want) {
		t.Errorf("multi-platform digests = %v, want %v (the index's, as a pull)", got[2].RepoDigests, want)
	}
	// Layer blobs are kept, for export; none of the foreign platform.
	for _, img := range []v1.Image{app, other, native} {
		ls, _ := img.Layers()
		for _, l := range ls {
			d, _ := l.Digest()
			if !s.hasBlob(d) {
				t.Errorf("layer blob %s not kept", d)
			}
		}
	}
	fl, _ := foreign.Layers()
	fd, _ := fl[0].Digest()
	if s.hasBlob(fd) {
		t.Errorf("layer of another platform stored")
	}

	// Importing again changes nothing and costs no second unpack.
	again, err := s.Import(ctx, bytes.NewReader(arch))
	if err != nil || len(again) != 3 || again[0].Layers[1] != got[0].Layers[1] {
		t.Fatalf("second import: %v, %+v", err, again)
	}
	// Removing every image removes every blob and layer.
	for _, img := range s.List() {
		if err := s.Remove(img.ID); err != nil {
			t.Fatal(err)
		}
	}
	assertStoreEmpty(t, s)
}

func TestImportDockerSave(t *testing.T) {
	ctx := context.Background()
	base := layerOf(t, []entry{{name: "etc/", typ: '5', mode: 0o755}, {name: "etc/os-release", body: "husk"}})
	a := imageOf(t, base, layerOf(t, []entry{{name: "a", body: "a"}}))
	b := imageOf(t, base)
	arch := dockerArchive(t, map[string]v1.Image{"busybox:latest": a, "example.com/app/a:1": a, "localhost:5000/app/b:2": b})
	s := newStore(t, Config{})
	got, err := s.Import(ctx, bytes.NewReader(arch))
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("imported %d images, want 2", len(got))
	}
	byID := map[string]Image{}
	for _, img := range got {
		byID[img.ID] = img
		if len(img.RepoDigests) != 0 {
			t.Errorf("%s has repo digests %v; a docker save archive carries no registry manifest", img.ID, img.RepoDigests)
		}
	}
	ia, ok := byID[configName(t, a)]
	if !ok || !slices.Equal(ia.RepoTags, []string{"docker.io/library/busybox:latest", "example.com/app/a:1"}) {
		t.Fatalf("image a = %+v", ia)
	}
	if readLayerFile(t, ia, 0, "etc/os-release") != "husk" || readLayerFile(t, ia, 1, "a") != "a" {
		t.Errorf("image a layers wrong")
	}
	ib, ok := byID[configName(t, b)]
	if !ok || !slices.Equal(ib.RepoTags, []string{"localhost:5000/app/b:2"}) || ib.Layers[0] != ia.Layers[0] {
		t.Errorf("image b = %+v", ib)
	}
	if !slices.Equal(ia.Config.Cmd, []string{"/bin/sh"}) {
		t.Errorf("config not kept: %+v", ia.Config)
	}
}

// classicArchive is a `docker save` tarball as Docker before 25 wrote it:
// uncompressed layers as <n>/layer.tar, a repeated layer as a symlink to
// the first copy, the config as <hex>.json. The config lists diffIDs,
// whatever the layers hold.
func classicArchive(t *testing.T, tag string, layers [][]byte, diffIDs []v1.Hash, cmd string) ([]byte, v1.Hash) {
	t.Helper()
	cf := v1.ConfigFile{OS: "linux", Architecture: platform().Architecture,
		Config: v1.Config{Cmd: []string{cmd}},
		RootFS: v1.RootFS{Type: "layers", DiffIDs: diffIDs}}
	rawConfig, _ := json.Marshal(cf)
	id := digestOf(rawConfig)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	put := func(hdr *tar.Header, data []byte) {
		hdr.Size = int64(len(data))
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		hdr.Mode = 0o644
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	var members []string
	first := map[string]string{}
	for i, l := range layers {
		m := fmt.Sprintf("%d/layer.tar", i)
		members = append(members, m)
		if prev, ok := first[string(l)]; ok {
			put(&tar.Header{Name: m, Typeflag: tar.TypeSymlink, Linkname: "../" + prev}, nil)
			continue
		}
		first[string(l)] = m
		put(&tar.Header{Name: m}, l)
	}
	put(&tar.Header{Name: id.Hex + ".json"}, rawConfig)
	manifest, _ := json.Marshal([]map[string]any{{"Config": id.Hex + ".json", "RepoTags": []string{tag}, "Layers": members}})
	put(&tar.Header{Name: "manifest.json"}, manifest)
	tw.Close()
	return buf.Bytes(), id
}

// A classic `docker save`, gzipped as by `docker save | gzip`.
func TestImportClassicDockerSaveGzipped(t *testing.T) {
	layer := tarBytes(t, []entry{{name: "hello", body: "world"}})
	diffID := digestOf(layer)
	arch, id := classicArchive(t, "hello:1", [][]byte{layer, layer}, []v1.Hash{diffID, diffID}, "/hello")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(arch)
	zw.Close()

	s := newStore(t, Config{})
	got, err := s.Import(context.Background(), &gz)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if len(got) != 1 || got[0].ID != id.String() || !slices.Equal(got[0].RepoTags, []string{"docker.io/library/hello:1"}) {
		t.Fatalf("imported %+v, want %s named docker.io/library/hello:1", got, id)
	}
	if readLayerFile(t, got[0], 1, "hello") != "world" {
		t.Errorf("layer content wrong")
	}
	if !s.hasBlob(diffID) {
		t.Errorf("uncompressed layer blob %s not kept", diffID)
	}
}

// A layer the store has unpacked already is not unpacked again, but the
// blob an archive brings for it is still checked against the diff id its
// config claims, before it is kept: a lying archive is refused.
func TestImportChecksBlobOfSharedLayer(t *testing.T) {
	layer := tarBytes(t, []entry{{name: "real", body: "real"}})
	diffID := digestOf(layer)
	s := newStore(t, Config{})
	good, _ := classicArchive(t, "good:1", [][]byte{layer}, []v1.Hash{diffID}, "/real")
	if _, err := s.Import(context.Background(), bytes.NewReader(good)); err != nil {
		t.Fatal(err)
	}
	// Same diff id claimed, other content. The kept blob of the first
	// image is the uncompressed layer itself, so compress the lie to give
	// it a digest of its own.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarBytes(t, []entry{{name: "fake", body: "fake"}}))
	zw.Close()
	lie, _ := classicArchive(t, "lie:1", [][]byte{gz.Bytes()}, []v1.Hash{diffID}, "/fake")
	_, err := s.Import(context.Background(), bytes.NewReader(lie))
	if !errors.Is(err, ErrInvalidArchive) || !strings.Contains(err.Error(), "diff id mismatch") {
		t.Fatalf("Import of a lying archive: %v, want a diff id mismatch", err)
	}
	if imgs := s.List(); len(imgs) != 1 || imgs[0].RepoTags[0] != "docker.io/library/good:1" {
		t.Errorf("images after the refused import: %+v", imgs)
	}
	if s.hasBlob(digestOf(gz.Bytes())) {
		t.Errorf("the lying blob was kept")
	}
}

func TestImportMalformed(t *testing.T) {
	noise := make([]byte, 8192)
	rand.Read(noise)
	good := imageOf(t, layerOf(t, []entry{{name: "f", body: string(noise)}}))
	second := imageOf(t, layerOf(t, []entry{{name: "g", body: "g"}}))
	layers, _ := good.Layers()
	layerDigest, _ := layers[0].Digest()
	goodOCI := ociArchive(t, func(p layout.Path) { appendImage(t, p, good, named("example.com/good:1")) })

	// rewrite returns the archive src with each member's data passed
	// through edit (nil: the member is dropped).
	rewrite := func(src []byte, edit func(name string, data []byte) []byte) []byte {
		var out bytes.Buffer
		tw := tar.NewWriter(&out)
		tr := tar.NewReader(bytes.NewReader(src))
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(tr)
			n, _ := archiveName(hdr.Name)
			data = edit(n, data)
			if data == nil {
				continue
			}
			hdr.Size = int64(len(data))
			tw.WriteHeader(hdr)
			tw.Write(data)
		}
		tw.Close()
		return out.Bytes()
	}
	layerMember := "blobs/sha256/" + layerDigest.Hex
	missingBlob := rewrite(goodOCI, func(n string, d []byte) []byte {
		if n == layerMember {
			return nil
		}
		return d
	})
	// Same size, other bytes (a whole tar, then padding): caught by the
	// digest check once the unpack has read it all.
	corrupt := rewrite(goodOCI, func(n string, d []byte) []byte {
		if n == layerMember {
			c := tarBytes(t, []entry{{name: "evil", body: "x"}})
			return append(c, make([]byte, len(d)-len(c))...)
		}
		return d
	})
	badIndex := rewrite(goodOCI, func(n string, d []byte) []byte {
		if n == ociIndexFile {
			return []byte("{not json")
		}
		return d
	})
	// The second image of the archive is broken: the first is not kept.
	halfGood := ociArchive(t, func(p layout.Path) {
		appendImage(t, p, good, named("example.com/good:1"))
		appendImage(t, p, second, named("example.com/second:1"))
	})
	sl, _ := second.Layers()
	sd, _ := sl[0].Digest()
	halfGood = rewrite(halfGood, func(n string, d []byte) []byte {
		if n == "blobs/sha256/"+sd.Hex {
			return bytes.Repeat([]byte{0}, len(d))
		}
		return d
	})
	unknown := tarBytes(t, []entry{{name: "README", body: "hello"}})

	for _, tc := range []struct {
		name, want string
		data       []byte
	}{
		{"not a tar", "not a tar archive", bytes.Repeat([]byte("garbage!"), 200)},
		{"empty", "empty", nil},
		{"truncated", "truncated", goodOCI[:len(goodOCI)/2]},
		{"missing blob", layerMember + " is not in the archive", missingBlob},
		{"digest mismatch", "digest", corrupt},
		{"unknown format", "unknown format", unknown},
		{"bad index.json", "index.json", badIndex},
		{"second image broken", "blobs/sha256/" + sd.Hex, halfGood},
		{"bad gzip", "decompress", append([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0}, bytes.Repeat([]byte{0xff}, 100)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, Config{})
			_, err := s.Import(context.Background(), bytes.NewReader(tc.data))
			if !errors.Is(err, ErrInvalidArchive) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Import err = %v; want ErrInvalidArchive naming %q", err, tc.want)
			}
			t.Logf("%v", err)
			assertStoreEmpty(t, s)
		})
	}
}
