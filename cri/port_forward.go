package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PortForward returns the URL of a streaming port-forward into a pod. CRI:
// pod_sandbox_id is required; an unknown pod is NotFound, one not ready
// FailedPrecondition. The ports to forward come with the stream (kubelet
// sends them per connection), so the request's port list is only checked
// for range here. Connections are made to the pod's loopback inside its
// network namespace.
func (s *Server) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, invalid("PortForward: pod_sandbox_id is required")
	}
	for _, p := range req.GetPort() {
		if p <= 0 || p > 65535 {
			return nil, invalid("PortForward: port out of range 1-65535")
		}
	}
	id, err := s.Sandboxes.PodForPortForward(req.GetPodSandboxId())
	if err != nil {
		return nil, toStatus(err)
	}
	return s.Streaming.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: id, Port: req.GetPort()})
}
