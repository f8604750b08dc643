package cri

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CheckpointPod would write a consistent checkpoint of the pod's selected
// containers under req.output_path (KEP-5823, alpha in cri-api v0.37).
// CRI: output_path is an existing empty directory the caller owns;
// container_ids is non-empty, without duplicates, the pod's running
// containers; unsupported options are refused, not ignored. husk checks
// all of it, then CRIU on this node: FailedPrecondition naming what CRIU
// lacks here, or Unimplemented where it works (package checkpoint).
func (s *Server) CheckpointPod(ctx context.Context, req *runtimeapi.CheckpointPodRequest) (*runtimeapi.CheckpointPodResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, invalid("CheckpointPod: pod_sandbox_id is required")
	}
	if err := emptyDir(req.GetOutputPath()); err != nil {
		return nil, invalid("CheckpointPod: output_path " + err.Error())
	}
	ids := req.GetContainerIds()
	if len(ids) == 0 {
		return nil, invalid("CheckpointPod: container_ids must name at least one container")
	}
	sorted := slices.Sorted(slices.Values(ids))
	for i, id := range sorted {
		if id == "" {
			return nil, invalid("CheckpointPod: container_ids has an empty id")
		}
		if i > 0 && sorted[i-1] == id {
			return nil, invalid(fmt.Sprintf("CheckpointPod: container_ids names %s twice", id))
		}
	}
	if err := noOptions(req.GetOptions()); err != nil {
		return nil, invalid("CheckpointPod: " + err.Error())
	}
	if err := s.Sandboxes.CheckpointPod(ctx, req.GetPodSandboxId(), ids); err != nil {
		return nil, toStatus(err)
	}
	// No checkpoint is written yet, so there is nothing to report done.
	return nil, status.Error(codes.Unimplemented, "CheckpointPod: checkpoints are not built in husk yet")
}

// emptyDir checks path is an absolute path to an existing empty directory.
func emptyDir(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("must be an absolute path, got %q", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("must be an existing directory: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.IsDir() {
		return fmt.Errorf("%s must be a directory", path)
	}
	if names, _ := f.Readdirnames(1); len(names) > 0 {
		return fmt.Errorf("%s must be empty (holds %s)", path, names[0])
	}
	return nil
}

// noOptions refuses runtime-specific options: husk documents none, and CRI
// has the runtime reject what it does not support rather than ignore it.
func noOptions(opts map[string]string) error {
	if len(opts) == 0 {
		return nil
	}
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return fmt.Errorf("options: husk supports none, got %s", strings.Join(keys, ", "))
}
