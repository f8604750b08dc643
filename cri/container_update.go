package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// UpdateContainerResources applies new Linux resource limits to a
// container; kubelet uses it for in-place pod resize.
func (s *Server) UpdateContainerResources(ctx context.Context, req *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("UpdateContainerResources: container_id is required")
	}
	if err := validateResources("linux", req.GetLinux()); err != nil {
		return nil, invalid("UpdateContainerResources: " + err.Error())
	}
	if err := s.Sandboxes.UpdateContainerResources(ctx, req.GetContainerId(), req.GetLinux()); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.UpdateContainerResourcesResponse{}, nil
}
