package image

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ImportBuiltin records an image husk ships itself (the pause image) from
// one uncompressed layer tar and its config, as a real image: config blob,
// OCI manifest, unpacked layer, record, marked Pinned so kubelet never
// garbage-collects it. The same content always gives the same id, and an
// import that changes nothing writes nothing.
func (s *Store) ImportBuiltin(ctx context.Context, ref string, layer []byte, cfg v1.Config) (Image, error) {
	p, err := parseRef(ref)
	if err != nil {
		return Image{}, err
	}
	if p.tag == "" {
		return Image{}, fmt.Errorf("%w %q: a built-in image needs a tag", ErrInvalidReference, ref)
	}
	diffID := digestOf(layer)
	cf := v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Config:       cfg,
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}},
	}
	if v := platform().Variant; v != "" {
		cf.Variant = v
	}
	rawConfig, err := json.Marshal(cf)
	if err != nil {
		return Image{}, fmt.Errorf("import %s: %w", p, err)
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(rawConfig)), Digest: digestOf(rawConfig)},
		Layers:        []v1.Descriptor{{MediaType: types.OCIUncompressedLayer, Size: int64(len(layer)), Digest: diffID}},
	}
	rawManifest, err := json.Marshal(m)
	if err != nil {
		return Image{}, fmt.Errorf("import %s: %w", p, err)
	}
	id := m.Config.Digest.String()
	manifestDigest := digestOf(rawManifest)
	repoDigest := p.name() + "@" + manifestDigest.String()

	s.mu.Lock()
	if cur := s.images[id]; cur != nil && cur.Pinned &&
		slices.Contains(cur.RepoTags, p.tagRef()) && slices.Contains(cur.RepoDigests, repoDigest) {
		img := s.imageLocked(cur)
		s.mu.Unlock()
		return img, nil
	}
	s.mu.Unlock()

	rec := &record{
		ID:       id,
		Blobs:    []string{manifestDigest.String(), id},
		ChainIDs: chainIDs([]v1.Hash{diffID}),
		Size:     uint64(len(layer)),
		Config:   cfg,
		Pinned:   true,
	}
	blobs := map[v1.Hash][]byte{manifestDigest: rawManifest, m.Config.Digest: rawConfig}
	img, err := s.store(ctx, rec, blobs, p.tagRef(), repoDigest, func(context.Context, int) (string, error) {
		return s.ensureLayer(ctx, rec.ChainIDs[0], diffID, diffID, openBytes(layer), false)
	})
	if err != nil {
		return Image{}, fmt.Errorf("import %s: %w", p, err)
	}
	return img, nil
}
