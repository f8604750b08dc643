package cri

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RestorePod would make a pod and its containers (CREATED, not started)
// from a checkpoint CheckpointPod wrote (KEP-5823). CRI: checkpoint_path is
// absolute, config and one config per container are given, container
// names unique, an unknown handler and unsupported options refused. husk
// checks all of it, then CRIU on this node: FailedPrecondition naming what
// CRIU lacks here, or Unimplemented where it works (package checkpoint).
func (s *Server) RestorePod(ctx context.Context, req *runtimeapi.RestorePodRequest) (*runtimeapi.RestorePodResponse, error) {
	p := req.GetCheckpointPath()
	if !filepath.IsAbs(p) {
		return nil, invalid(fmt.Sprintf("RestorePod: checkpoint_path must be an absolute path, got %q", p))
	}
	if st, err := os.Stat(p); err != nil || !st.IsDir() {
		return nil, invalid(fmt.Sprintf("RestorePod: checkpoint_path %s must be a directory holding a checkpoint", p))
	}
	md := req.GetConfig().GetMetadata()
	if md.GetName() == "" || md.GetNamespace() == "" || md.GetUid() == "" {
		return nil, invalid("RestorePod: config.metadata needs name, namespace and uid")
	}
	if len(req.GetContainerConfigs()) == 0 {
		return nil, invalid("RestorePod: container_configs must have one config per container of the checkpoint")
	}
	seen := map[string]bool{}
	for i, c := range req.GetContainerConfigs() {
		n := c.GetMetadata().GetName()
		if n == "" {
			return nil, invalid(fmt.Sprintf("RestorePod: container_configs[%d].metadata.name is required", i))
		}
		if seen[n] {
			return nil, invalid(fmt.Sprintf("RestorePod: container_configs names container %q twice", n))
		}
		seen[n] = true
	}
	if err := noOptions(req.GetOptions()); err != nil {
		return nil, invalid("RestorePod: " + err.Error())
	}
	if err := s.Sandboxes.RestorePod(ctx, req.GetConfig(), req.GetRuntimeHandler()); err != nil {
		return nil, toStatus(err)
	}
	// No pod is made yet, so there is nothing to return.
	return nil, status.Error(codes.Unimplemented, "RestorePod: restoring from a checkpoint is not built in husk yet")
}
