package testenv

import (
	"context"
	"fmt"
	"runtime"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Artifact is what a reference names in a registry: a v1.Image or a
// v1.ImageIndex.
type Artifact interface {
	MediaType() (types.MediaType, error)
	Digest() (v1.Hash, error)
	RawManifest() ([]byte, error)
}

// Platform is linux/GOARCH.
func Platform() *v1.Platform { return &v1.Platform{OS: "linux", Architecture: runtime.GOARCH} }

// Push pushes img to ref on a plain-HTTP registry (e.g. "127.0.0.1:5000/busybox:1").
func Push(ctx context.Context, img v1.Image, ref string) error {
	return PushArtifact(ctx, img, ref)
}

// PushIndex wraps img in an index of media type mt (types.OCIImageIndex or
// types.DockerManifestList) with platform linux/GOARCH, converting the image
// to the matching manifest media types, and pushes the index to ref.
func PushIndex(ctx context.Context, img v1.Image, ref string, mt types.MediaType) error {
	idx, err := Index(img, mt)
	if err != nil {
		return err
	}
	return PushArtifact(ctx, idx, ref)
}

// Index wraps img in a one-entry index of media type mt (types.OCIImageIndex
// or types.DockerManifestList) for platform linux/GOARCH.
func Index(img v1.Image, mt types.MediaType) (v1.ImageIndex, error) {
	var err error
	switch mt {
	case types.OCIImageIndex:
		img, err = ToOCI(img)
	case types.DockerManifestList:
		img, err = ToDocker(img)
	default:
		return nil, fmt.Errorf("not an index media type: %s", mt)
	}
	if err != nil {
		return nil, err
	}
	imt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, mt)
	return mutate.AppendManifests(idx, mutate.IndexAddendum{
		Add:        img,
		Descriptor: v1.Descriptor{MediaType: imt, Platform: Platform()},
	}), nil
}

// PushArtifact pushes an image or an index to ref on a plain-HTTP registry.
func PushArtifact(ctx context.Context, a Artifact, ref string) error {
	r, err := name.ParseReference(ref, name.Insecure, name.StrictValidation)
	if err != nil {
		return err
	}
	switch a := a.(type) {
	case v1.Image:
		err = remote.Write(r, a, remote.WithContext(ctx))
	case v1.ImageIndex:
		err = remote.WriteIndex(r, a, remote.WithContext(ctx))
	default:
		return fmt.Errorf("push %s: %T is neither an image nor an index", ref, a)
	}
	if err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}
