package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListImages lists images, optionally only those a reference resolves to.
func (s *Server) ListImages(ctx context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	return &runtimeapi.ListImagesResponse{Images: s.listImages(req.GetFilter())}, nil
}

// listImages is the item list of ListImages and StreamImages.
func (s *Server) listImages(f *runtimeapi.ImageFilter) []*runtimeapi.Image {
	var out []*runtimeapi.Image
	if want := f.GetImage().GetImage(); want != "" {
		if img, err := s.Images.Resolve(want); err == nil {
			out = append(out, toCRIImage(img))
		}
		return out
	}
	for _, img := range s.Images.List() {
		out = append(out, toCRIImage(img))
	}
	return out
}
