package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListImages lists images, optionally only those a reference resolves to.
func (s *Server) ListImages(ctx context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	resp := &runtimeapi.ListImagesResponse{}
	want := req.GetFilter().GetImage().GetImage()
	if want != "" {
		img, err := s.Images.Resolve(want)
		if err == nil {
			resp.Images = append(resp.Images, toCRIImage(img))
		}
		return resp, nil
	}
	for _, img := range s.Images.List() {
		resp.Images = append(resp.Images, toCRIImage(img))
	}
	return resp, nil
}
