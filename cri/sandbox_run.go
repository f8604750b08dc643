package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RunPodSandbox creates and starts a pod sandbox, ready when this returns.
// CRI: a name (name, namespace, uid, attempt) already in use is an error.
func (s *Server) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	if req.GetConfig() == nil {
		return nil, invalid("RunPodSandbox: config is required")
	}
	if err := validatePodSandboxConfig(req.GetConfig()); err != nil {
		return nil, invalid("RunPodSandbox: " + err.Error())
	}
	id, err := s.Sandboxes.RunPodSandbox(ctx, req.GetConfig(), req.GetRuntimeHandler())
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, nil
}
