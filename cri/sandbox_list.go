package cri

import (
	"context"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListPodSandbox lists sandboxes matching the filter: id (or prefix, as
// crictl users type it), state, and a label selector that must all match.
// Unfiltered, as kubelet's relist asks, the answer is the one encoded once
// per change of the records (list_encoded.go).
func (s *Server) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	f := req.GetFilter()
	if f.GetId() == "" && f.GetState() == nil && len(f.GetLabelSelector()) == 0 {
		return s.lists.pods.get(s.Sandboxes.Generation(), func() *runtimeapi.ListPodSandboxResponse {
			return &runtimeapi.ListPodSandboxResponse{Items: s.listPodSandboxes(ctx, nil)}
		}), nil
	}
	return &runtimeapi.ListPodSandboxResponse{Items: s.listPodSandboxes(ctx, f)}, nil
}

// listPodSandboxes is the item list of ListPodSandbox and StreamPodSandboxes.
func (s *Server) listPodSandboxes(ctx context.Context, f *runtimeapi.PodSandboxFilter) []*runtimeapi.PodSandbox {
	var out []*runtimeapi.PodSandbox
	for _, p := range s.Sandboxes.ListPodSandboxes(ctx) {
		state := podState(p)
		if f.GetId() != "" && !strings.HasPrefix(p.ID, f.GetId()) {
			continue
		}
		if f.GetState() != nil && f.GetState().GetState() != state {
			continue
		}
		if !labelsMatch(p.Config.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		out = append(out, &runtimeapi.PodSandbox{
			Id: p.ID, Metadata: p.Config.GetMetadata(), State: state, CreatedAt: p.CreatedAt.UnixNano(),
			Labels: p.Config.GetLabels(), Annotations: p.Config.GetAnnotations(), RuntimeHandler: p.Handler,
		})
	}
	return out
}

func labelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
