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
		// Only what husk really does: per handler, recursive read-only
		// mounts (runc's rro, mount_setattr) and pod user namespaces where
		// the kernel has what they need; the supplemental-groups policy
		// with ContainerStatus.user.
		RuntimeHandlers: s.runtimeHandlers(),
		Features:        &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true},
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
		if u := s.Sandboxes.UnreadableRecords(); len(u) > 0 {
			// Records found garbage at start, left out and left alone.
			resp.Info["unreadable_records"] = verboseInfo(u)
		}
	}
	return resp, nil
}

// runtimeHandlers lists every configured RuntimeClass handler, the default
// ("") first, with the features its runtime really has.
func (s *Server) runtimeHandlers() []*runtimeapi.RuntimeHandler {
	var out []*runtimeapi.RuntimeHandler
	for _, name := range s.Sandboxes.HandlerNames() {
		rro, userns := s.Sandboxes.HandlerFeatures(name)
		out = append(out, &runtimeapi.RuntimeHandler{Name: name, Features: &runtimeapi.RuntimeHandlerFeatures{
			RecursiveReadOnlyMounts: rro, UserNamespaces: userns}})
	}
	return out
}
