package cri

import (
	"context"
	"strings"

	"github.com/husk-runtime/husk/sandbox"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListPodSandboxStats reports the usage of every pod matching the filter:
// id (or prefix) and a label selector whose pairs must all match (CRI:
// MatchLabels only, ANDed). Pods still being created are left out, as
// ListPodSandbox leaves them out; a NOTREADY pod is listed with its
// attributes and containers but no cgroup or network figures.
func (s *Server) ListPodSandboxStats(ctx context.Context, req *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	return &runtimeapi.ListPodSandboxStatsResponse{Stats: s.listPodSandboxStats(ctx, req.GetFilter())}, nil
}

// listPodSandboxStats is the item list of ListPodSandboxStats and
// StreamPodSandboxStats.
func (s *Server) listPodSandboxStats(ctx context.Context, f *runtimeapi.PodSandboxStatsFilter) []*runtimeapi.PodSandboxStats {
	keep := func(p sandbox.PodView) bool {
		return strings.HasPrefix(p.ID, f.GetId()) && labelsMatch(p.Config.GetLabels(), f.GetLabelSelector())
	}
	list := s.Sandboxes.ListPodSandboxStats(ctx, keep)
	out := make([]*runtimeapi.PodSandboxStats, 0, len(list))
	for _, st := range list {
		out = append(out, podSandboxStats(st))
	}
	return out
}
