package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Status reports the RuntimeReady and NetworkReady conditions kubelet
// gates on: a node with no CNI network is NotReady with the reason saying
// where husk looked.
func (s *Server) Status(ctx context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	netReady, reason := s.Network.Status()
	netCond := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: netReady}
	if !netReady {
		netCond.Reason = "NetworkPluginNotReady"
		netCond.Message = reason
	}
	resp := &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
			{Type: runtimeapi.RuntimeReady, Status: true},
			netCond,
		}},
		// Only what husk really does: recursive read-only mounts (runc's
		// rro, mount_setattr), pod user namespaces where the kernel has
		// what they need, and the supplemental-groups policy with
		// ContainerStatus.user.
		RuntimeHandlers: []*runtimeapi.RuntimeHandler{{Name: "", Features: &runtimeapi.RuntimeHandlerFeatures{
			RecursiveReadOnlyMounts: true, UserNamespaces: s.Sandboxes.UsernsSupported()}}},
		Features: &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true},
	}
	if req.GetVerbose() {
		// What an operator asks "why is this node NotReady?" about: the
		// CNI network husk selected (or why none), the configuration in
		// effect and the host's cgroup layout. crictl info and husk info show these.
		resp.Info = map[string]string{"cni": verboseInfo(s.Network.Info())}
		if s.Config != nil {
			resp.Info["config"] = configInfo(s.Config)
		}
		if s.Cgroups != nil {
			// The layout every limit decision was made with: why a
			// hugepage or cpuset limit was dropped on this node.
			resp.Info["cgroups"] = s.Cgroups.String()
		}
	}
	return resp, nil
}
