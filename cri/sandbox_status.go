package cri

import (
	"context"

	"github.com/husk-runtime/husk/sandbox"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PodSandboxStatus reports a sandbox. CRI: an unknown id is NotFound.
func (s *Server) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, invalid("PodSandboxStatus: pod_sandbox_id is required")
	}
	p, err := s.Sandboxes.PodSandbox(ctx, req.GetPodSandboxId())
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: podSandboxStatus(p)}
	if req.GetVerbose() {
		resp.Info = map[string]string{"info": verboseInfo(map[string]any{
			"pid": p.InfraPid, "netns": p.NetnsPath, "cgroup": p.Cgroup, "shim_socket": p.ShimSocket,
		})}
	}
	return resp, nil
}

// podSandboxStatus is the CRI status of a sandbox, also sent with
// GetContainerEvents.
func podSandboxStatus(p sandbox.PodView) *runtimeapi.PodSandboxStatus {
	st := &runtimeapi.PodSandboxStatus{
		Id:          p.ID,
		Metadata:    p.Config.GetMetadata(),
		State:       podState(p),
		CreatedAt:   p.CreatedAt.UnixNano(),
		Labels:      p.Config.GetLabels(),
		Annotations: p.Config.GetAnnotations(),
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{
			Options: p.Config.GetLinux().GetSecurityContext().GetNamespaceOptions(),
		}},
		RuntimeHandler: p.Handler,
	}
	if len(p.IPs) > 0 {
		st.Network = &runtimeapi.PodSandboxNetworkStatus{Ip: p.IPs[0]}
		for _, ip := range p.IPs[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
		}
	}
	return st
}

func podState(p sandbox.PodView) runtimeapi.PodSandboxState {
	if p.Ready {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}
