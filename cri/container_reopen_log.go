package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ReopenContainerLog asks for the container's log file to be reopened,
// after kubelet's log rotation renamed it. CRI: if this returns an error,
// no new log file may be created afterwards.
func (s *Server) ReopenContainerLog(ctx context.Context, req *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("ReopenContainerLog: container_id is required")
	}
	if err := s.Sandboxes.ReopenContainerLog(ctx, req.GetContainerId()); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}
