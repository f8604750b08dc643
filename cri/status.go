package cri

import (
	"context"

	"github.com/husk-runtime/husk/sandbox"
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
	return &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
			{Type: runtimeapi.RuntimeReady, Status: true},
			netCond,
		}},
		// Only what husk really does: recursive read-only mounts (runc's
		// rro, mount_setattr), pod user namespaces where the kernel has
		// what they need, and the supplemental-groups policy with
		// ContainerStatus.user.
		RuntimeHandlers: []*runtimeapi.RuntimeHandler{{Name: "", Features: &runtimeapi.RuntimeHandlerFeatures{
			RecursiveReadOnlyMounts: true, UserNamespaces: sandbox.UsernsSupported()}}},
		Features: &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true},
	}, nil
}
