package cri

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/husk-runtime/husk/image"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageStatus reports an image by tag, digest or id. CRI: an image that is
// not present is not an error; the response's image is nil.
func (s *Server) ImageStatus(ctx context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, invalid("ImageStatus: image is required")
	}
	img, err := s.Images.Resolve(ref)
	if errors.Is(err, image.ErrNotFound) {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &runtimeapi.ImageStatusResponse{Image: toCRIImage(img)}
	if req.GetVerbose() {
		resp.Info = map[string]string{"info": verboseInfo(map[string]any{"imageSpec": map[string]any{"config": img.Config}})}
	}
	return resp, nil
}

func toCRIImage(img image.Image) *runtimeapi.Image {
	out := &runtimeapi.Image{
		Id: img.ID, RepoTags: img.RepoTags, RepoDigests: img.RepoDigests, Size: img.Size, Pinned: img.Pinned,
		Spec: &runtimeapi.ImageSpec{Image: img.ID},
	}
	// kubelet reads the image's user to enforce runAsNonRoot: a numeric uid
	// goes in Uid, a name in Username.
	user, _, _ := strings.Cut(img.Config.User, ":")
	if user != "" {
		if uid, err := strconv.ParseInt(user, 10, 64); err == nil {
			out.Uid = &runtimeapi.Int64Value{Value: uid}
		} else {
			out.Username = user
		}
	}
	return out
}
