package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CreateContainer creates a container in a ready sandbox. CRI: the
// sandbox must exist (NotFound) and be ready (FailedPrecondition); the
// image must be present, kubelet pulls it first.
func (s *Server) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, invalid("CreateContainer: pod_sandbox_id is required")
	}
	if req.GetConfig() == nil {
		return nil, invalid("CreateContainer: config is required")
	}
	// The log path is checked against the log directory the pod was made
	// with, which the request's copy may lack.
	podCfg := req.GetSandboxConfig()
	if cfg, err := s.Sandboxes.PodConfig(req.GetPodSandboxId()); err == nil {
		podCfg = cfg
	}
	if err := validateContainerConfig(req.GetConfig(), podCfg); err != nil {
		return nil, invalid("CreateContainer: " + err.Error())
	}
	id, err := s.Sandboxes.CreateContainer(ctx, req.GetPodSandboxId(), req.GetConfig(), req.GetSandboxConfig())
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
}
