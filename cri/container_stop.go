package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StopContainer stops a running container with a grace period of
// req.timeout seconds before SIGKILL. CRI: stopping a container that is
// already stopped, or unknown, succeeds (kubelet retries after restarts).
func (s *Server) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("StopContainer: container_id is required")
	}
	if err := s.Sandboxes.StopContainer(ctx, req.GetContainerId(), req.GetTimeout()); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.StopContainerResponse{}, nil
}
