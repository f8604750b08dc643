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
	return &runtimeapi.ListContainerStatsResponse{Stats: s.listContainerStats(ctx, req.GetFilter())}, nil
}

// listContainerStats is the item list of ListContainerStats and
// StreamContainerStats.
func (s *Server) listContainerStats(ctx context.Context, f *runtimeapi.ContainerStatsFilter) []*runtimeapi.ContainerStats {
	keep := func(c sandbox.ContainerView) bool {
		return strings.HasPrefix(c.ID, f.GetId()) && strings.HasPrefix(c.PodID, f.GetPodSandboxId()) &&
			labelsMatch(c.Config.GetLabels(), f.GetLabelSelector())
	}
	list := s.Sandboxes.ListContainerStats(ctx, keep)
	out := make([]*runtimeapi.ContainerStats, 0, len(list))
	for _, st := range list {
		out = append(out, containerStats(st))
	}
	return out
}
