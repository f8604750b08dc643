package cri

import (
	"context"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ExecSync runs a command in a container and returns its output and exit
// code. CRI: a timeout of 0 means none; past a timeout the call fails with
// DeadlineExceeded, which kubelet's exec probes read as a probe timeout.
func (s *Server) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("ExecSync: container_id is required")
	}
	if len(req.GetCmd()) == 0 {
		return nil, invalid("ExecSync: cmd is required")
	}
	res, err := s.Sandboxes.ExecSync(ctx, req.GetContainerId(), req.GetCmd(), time.Duration(req.GetTimeout())*time.Second)
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.ExecSyncResponse{Stdout: res.Stdout, Stderr: res.Stderr, ExitCode: res.ExitCode}, nil
}
