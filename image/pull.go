package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"
)

// platform is what manifest lists and OCI indexes are resolved to. arm64
// and amd64 carry no variant constraint (an empty variant matches any);
// 32-bit arm assumes v7, the only variant husk builds for.
func platform() v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if runtime.GOARCH == "arm" {
		p.Variant = "v7"
	}
	return p
}

// Pull fetches ref from its registry (or the mirrors configured for it),
// verifies every blob, unpacks the layers it does not have yet and records
// the image. Hosts are tried in order; a failure at one moves on to the next.
func (s *Store) Pull(ctx context.Context, ref string, auth *Auth) (Image, error) {
	p, err := parseRef(ref)
	if err != nil {
		return Image{}, err
	}
	// Watchers (WatchPull) follow the pull by its normalized ref; the
	// track rides in ctx down to fetch and ensureLayer.
	t := s.progress.start(p.String())
	start := time.Now()
	img, err := s.pull(withPullTrack(ctx, t), p, auth)
	err = classifyPull(err)
	s.progress.finish(t, img, err)
	s.rec.PullFinished(p.domain(), t.received(), time.Since(start), err)
	return img, err
}

// pull is Pull, with progress tracked.
func (s *Store) pull(ctx context.Context, p parsedRef, auth *Auth) (Image, error) {
	reqAuth, err := authenticator(auth)
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: %w", p, err)
	}
	// Credentials in the request are used for every host, as containerd
	// does; without them, the auth file may hold some per host.
	fromRequest := auth != nil && *auth != (Auth{})
	eps, err := s.endpoints(p.domain())
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: %w", p, err)
	}
	// As containerd: resolving a tag needs "resolve"; a digest is fetched
	// from any host that may "pull".
	need := capPull
	if p.digest == "" {
		need = capResolve
	}
	var errs []error
	for i, ep := range eps {
		if ep.caps&need == 0 {
			continue
		}
		a := reqAuth
		if !fromRequest {
			// A mirror gets the credentials filed under its own host
			// only; the last host (the registry's server) also those
			// filed under the name in the image reference ("docker.io"
			// for registry-1.docker.io, or a hosts.toml "server").
			hosts := []string{ep.host}
			if i == len(eps)-1 {
				hosts = append(hosts, p.domain())
			}
			fa, err := s.fileAuth(p.path(), hosts...)
			if err != nil {
				return Image{}, fmt.Errorf("pull %s: %w", p, err)
			}
			if fa != nil {
				if a, err = authenticator(fa); err != nil {
					return Image{}, fmt.Errorf("pull %s: registry auth file %s, entry for %s: %w", p, s.authFile, ep.host, err)
				}
			}
		}
		img, err := s.pullFrom(ctx, p, ep, a)
		if err == nil {
			return img, nil
		}
		if ctx.Err() != nil {
			return Image{}, fmt.Errorf("pull %s from %s: %w", p, ep, err)
		}
		slog.WarnContext(ctx, "pull from registry host failed", "ref", p.String(), "host", ep.String(), "error", err)
		errs = append(errs, fmt.Errorf("%s: %w", ep, err))
	}
	if len(errs) == 0 {
		return Image{}, fmt.Errorf("pull %s: no registry host is allowed to serve it", p)
	}
	return Image{}, fmt.Errorf("pull %s: %w", p, errors.Join(errs...))
}

// pullFrom pulls p from one endpoint.
func (s *Store) pullFrom(ctx context.Context, p parsedRef, ep endpoint, a authn.Authenticator) (Image, error) {
	var nopts []name.Option
	if ep.scheme == "http" {
		nopts = append(nopts, name.Insecure)
	}
	reg, err := name.NewRegistry(ep.host, nopts...)
	if err != nil {
		return Image{}, fmt.Errorf("%w: registry %q: %v", ErrInvalidReference, ep.host, err)
	}
	repo := reg.Repo(p.path())
	var nref name.Reference = repo.Tag(p.tag)
	if p.digest != "" {
		nref = repo.Digest(p.digest)
	}
	tr, err := s.transportFor(ep)
	if err != nil {
		return Image{}, err
	}
	ctx, watch := newStallWatch(ctx, ep.host, s.stallTimeout())
	defer watch.stop()
	tr = watch.transport(tr)
	img, err := s.fetch(ctx, p, nref, tr, a)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			var st *errStalled
			if errors.As(cause, &st) {
				return Image{}, cause
			}
		}
		return Image{}, err
	}
	return img, nil
}

// fetch pulls nref through tr: manifest, config, layers, record.
func (s *Store) fetch(ctx context.Context, p parsedRef, nref name.Reference, tr http.RoundTripper, a authn.Authenticator) (Image, error) {
	desc, err := remote.Get(nref,
		remote.WithContext(ctx),
		remote.WithAuth(a),
		remote.WithTransport(tr),
		remote.WithPlatform(platform()),
		remote.WithUserAgent("husk"),
	)
	if err != nil {
		return Image{}, err
	}
	if p.digest != "" && desc.Digest.String() != p.digest {
		return Image{}, fmt.Errorf("registry returned manifest %s for %s", desc.Digest, p.digest)
	}
	blobs := make(map[v1.Hash][]byte)
	if desc.MediaType.IsIndex() {
		blobs[desc.Digest] = desc.Manifest
	}
	img, err := desc.Image()
	if err != nil {
		return Image{}, fmt.Errorf("resolve %s for %s: %w", desc.Digest, platformString(), err)
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return Image{}, err
	}
	blobs[digestOf(rawManifest)] = rawManifest
	m, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil {
		return Image{}, fmt.Errorf("parse manifest: %w", err)
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return Image{}, fmt.Errorf("fetch config %s: %w", m.Config.Digest, err)
	}
	// The image id is the config digest; check it here rather than trust
	// the fetch path to have done so.
	if got := digestOf(rawConfig); got != m.Config.Digest {
		return Image{}, fmt.Errorf("config digest mismatch: got %s, manifest says %s", got, m.Config.Digest)
	}
	blobs[m.Config.Digest] = rawConfig
	cf, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return Image{}, fmt.Errorf("parse config %s: %w", m.Config.Digest, err)
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return Image{}, fmt.Errorf("config %s lists %d diff ids for %d layers", m.Config.Digest, len(cf.RootFS.DiffIDs), len(m.Layers))
	}
	layers, err := img.Layers()
	if err != nil {
		return Image{}, err
	}
	track := pullTrackFrom(ctx) // progress for watchers (progress.go)
	track.setLayers(m.Layers)
	rec := &record{
		ID:       m.Config.Digest.String(),
		ChainIDs: chainIDs(cf.RootFS.DiffIDs),
		Config:   cf.Config,
	}
	for d := range blobs {
		rec.Blobs = append(rec.Blobs, d.String())
	}
	for _, l := range m.Layers {
		rec.Size += uint64(l.Size)
		// Layer blobs are kept for export (see export_blobs.go).
		if !slices.Contains(rec.Blobs, l.Digest.String()) {
			rec.Blobs = append(rec.Blobs, l.Digest.String())
		}
	}
	repoDigest := p.name() + "@" + desc.Digest.String()
	return s.store(ctx, rec, blobs, p.tagRef(), repoDigest, func(ctx context.Context, i int) (string, error) {
		return s.ensureLayer(withLayerTrack(ctx, track.layer(i)), rec.ChainIDs[i], cf.RootFS.DiffIDs[i], m.Layers[i].Digest, layers[i].Compressed, true)
	})
}

// store writes the blobs, unpacks the layers (unpack(i) for layer i) and
// commits the record, holding everything against collection meanwhile.
func (s *Store) store(ctx context.Context, rec *record, blobs map[v1.Hash][]byte, tag, repoDigest string, unpack func(ctx context.Context, i int) (string, error)) (_ Image, err error) {
	held := append(append([]string(nil), rec.ChainIDs...), rec.Blobs...)
	s.mu.Lock()
	s.holdLocked(held)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.releaseLocked(held)
		if err == nil {
			return
		}
		// A failed pull leaves what it had written: the manifest and
		// config blobs, and the layers (with their blobs) that came in
		// whole before another failed. No image names them, so kubelet's
		// image GC (which removes images) can never free them, and
		// nothing else collected them before the next image removal or
		// daemon start; a pull failing again and again (a corrupt
		// layer, a stalled registry) piled them up. Collect now; what a
		// concurrent pull or a container uses is held or in use, and
		// kept.
		if gerr := s.gcLocked(); gerr != nil {
			slog.WarnContext(ctx, "collecting what a failed pull left failed", "error", gerr)
		}
	}()

	for d, data := range blobs {
		if err := s.putBlob(d, data); err != nil {
			return Image{}, err
		}
	}
	// Layers are fetched and unpacked side by side, a few at a time: each
	// one's directory depends only on its own diff, and a deep image would
	// otherwise pay every round trip in turn. The first failure cancels
	// the rest.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelLayers)
	for i := range rec.ChainIDs {
		g.Go(func() error {
			_, err := unpack(gctx, i)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return Image{}, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	cur, removed, err := s.commitLocked(rec, tag, repoDigest)
	if err != nil {
		return Image{}, err
	}
	if removed {
		if err := s.gcLocked(); err != nil {
			slog.WarnContext(ctx, "image garbage collection failed", "error", err)
		}
	}
	slog.InfoContext(ctx, "image stored", "id", cur.ID, "tag", tag, "digest", repoDigest)
	return s.imageLocked(cur), nil
}

// stallTimeout is the configured silence after which a pull is abandoned.
func (s *Store) stallTimeout() time.Duration {
	if s.stall > 0 {
		return s.stall
	}
	return DefaultStallTimeout
}

// parallelLayers bounds the layers of one pull fetched at once, as
// containerd's max_concurrent_downloads (3) does.
const parallelLayers = 3

func platformString() string {
	p := platform()
	if p.Variant != "" {
		return p.OS + "/" + p.Architecture + "/" + p.Variant
	}
	return p.OS + "/" + p.Architecture
}

// openBytes adapts an in-memory blob to ensureLayer's open function.
func openBytes(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}
