package cri

import (
	"context"
	"errors"

	"github.com/husk-runtime/husk/image"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RemoveImage removes an image by tag, digest or id. CRI: removing an
// image that is not present succeeds.
func (s *Server) RemoveImage(ctx context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, invalid("RemoveImage: image is required")
	}
	if err := s.Images.Remove(ref); err != nil && !errors.Is(err, image.ErrNotFound) {
		return nil, toStatus(err)
	}
	return &runtimeapi.RemoveImageResponse{}, nil
}
