package cri

import (
	"context"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListContainers lists containers matching the filter: id and sandbox id
// (or prefixes), state, and a label selector that must all match.
// Unfiltered, as kubelet's relist asks, the answer is the one encoded once
// per change of the records (list_encoded.go).
func (s *Server) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	f := req.GetFilter()
	if f.GetId() == "" && f.GetPodSandboxId() == "" && f.GetState() == nil && len(f.GetLabelSelector()) == 0 {
		return s.lists.ctrs.get(s.Sandboxes.Generation(), func() *runtimeapi.ListContainersResponse {
			return &runtimeapi.ListContainersResponse{Containers: s.listContainers(ctx, nil)}
		}), nil
	}
	return &runtimeapi.ListContainersResponse{Containers: s.listContainers(ctx, f)}, nil
}

// listContainers is the item list of ListContainers and StreamContainers.
func (s *Server) listContainers(ctx context.Context, f *runtimeapi.ContainerFilter) []*runtimeapi.Container {
	var out []*runtimeapi.Container
	for _, c := range s.Sandboxes.ListContainers(ctx) {
		state := containerState(c.State)
		if f.GetId() != "" && !strings.HasPrefix(c.ID, f.GetId()) {
			continue
		}
		if f.GetPodSandboxId() != "" && !strings.HasPrefix(c.PodID, f.GetPodSandboxId()) {
			continue
		}
		if f.GetState() != nil && f.GetState().GetState() != state {
			continue
		}
		if !labelsMatch(c.Config.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		out = append(out, &runtimeapi.Container{
			Id: c.ID, PodSandboxId: c.PodID, Metadata: c.Config.GetMetadata(),
			Image:    &runtimeapi.ImageSpec{Image: c.ImageName, UserSpecifiedImage: c.ImageRef},
			ImageRef: c.RepoRef, ImageId: c.ImageID, State: state, CreatedAt: c.CreatedAt.UnixNano(),
			Labels: c.Config.GetLabels(), Annotations: c.Config.GetAnnotations(),
		})
	}
	return out
}
