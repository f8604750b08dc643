package cri

import (
	"context"
	"strings"

	"github.com/husk-runtime/husk/sandbox"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListContainerStats reports the usage of every container matching the
// filter: id and pod sandbox id (or prefixes, as crictl users type them)
// and a label selector whose pairs must all match (CRI: MatchLabels only,
// ANDed). kubelet calls it every few seconds for all containers, so the
// filter runs on the in-memory records before any file is read.
func (s *Server) ListContainerStats(ctx context.Context, req *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	f := req.GetFilter()
	keep := func(c sandbox.ContainerView) bool {
		return strings.HasPrefix(c.ID, f.GetId()) && strings.HasPrefix(c.PodID, f.GetPodSandboxId()) &&
			labelsMatch(c.Config.GetLabels(), f.GetLabelSelector())
	}
	list := s.Sandboxes.ListContainerStats(ctx, keep)
	resp := &runtimeapi.ListContainerStatsResponse{Stats: make([]*runtimeapi.ContainerStats, 0, len(list))}
	for _, st := range list {
		resp.Stats = append(resp.Stats, containerStats(st))
	}
	return resp, nil
}
