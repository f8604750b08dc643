package cri

import (
	"context"
	"fmt"
	"path/filepath"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CheckpointContainer would write a checkpoint archive of a running
// container to req.location (kubelet's checkpoint API, with CRIU). CRI
// leaves the archive's layout to the runtime. husk checks the request, the
// container and CRIU on this node, and answers FailedPrecondition naming
// what CRIU lacks here, or Unimplemented where CRIU works: the archive is
// not built yet (package checkpoint).
func (s *Server) CheckpointContainer(ctx context.Context, req *runtimeapi.CheckpointContainerRequest) (*runtimeapi.CheckpointContainerResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("CheckpointContainer: container_id is required")
	}
	if l := req.GetLocation(); l == "" || !filepath.IsAbs(l) {
		return nil, invalid("CheckpointContainer: location must be an absolute path, got " + fmt.Sprintf("%q", l))
	}
	if req.GetTimeout() < 0 {
		return nil, invalid("CheckpointContainer: timeout must not be negative")
	}
	if err := s.Sandboxes.CheckpointContainer(ctx, req.GetContainerId()); err != nil {
		return nil, toStatus(err)
	}
	// No checkpoint is written yet, so there is nothing to report done.
	return nil, status.Error(codes.Unimplemented, "CheckpointContainer: checkpoints are not built in husk yet")
}
