package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// UpdateRuntimeConfig takes the node's pod CIDR from kubelet; husk's default
// network (when in use) is rewritten to allocate from it.
func (s *Server) UpdateRuntimeConfig(ctx context.Context, req *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	cidr := req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	if cidr == "" {
		return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
	}
	if err := s.Network.UpdatePodCIDR(cidr); err != nil {
		return nil, invalid("pod CIDR " + cidr + ": " + err.Error())
	}
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}
