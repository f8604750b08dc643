package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// UpdatePodSandboxResources keeps the sandbox's config in step with the
// pod-level resources kubelet has just applied to the pod cgroup. CRI: best
// effort for kubelet; an unknown sandbox is NotFound.
func (s *Server) UpdatePodSandboxResources(ctx context.Context, req *runtimeapi.UpdatePodSandboxResourcesRequest) (*runtimeapi.UpdatePodSandboxResourcesResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, invalid("UpdatePodSandboxResources: pod_sandbox_id is required")
	}
	if err := validateResources("overhead", req.GetOverhead()); err != nil {
		return nil, invalid("UpdatePodSandboxResources: " + err.Error())
	}
	if err := validateResources("resources", req.GetResources()); err != nil {
		return nil, invalid("UpdatePodSandboxResources: " + err.Error())
	}
	if err := s.Sandboxes.UpdatePodSandboxResources(ctx, req.GetPodSandboxId(), req.GetOverhead(), req.GetResources()); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.UpdatePodSandboxResourcesResponse{}, nil
}
