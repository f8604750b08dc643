package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Attach returns the URL of a streaming attach to a running container's
// main process. CRI: tty and stderr together are invalid, at least one
// stream must be asked for; unknown container is NotFound, one not running
// FailedPrecondition. Input reaches the container only if it was created
// with stdin (ContainerConfig.stdin); with stdin_once, the end of the first
// attach's input closes the container's stdin.
func (s *Server) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("Attach: container_id is required")
	}
	if req.GetTty() && req.GetStderr() {
		return nil, invalid("Attach: tty and stderr cannot both be set: a terminal has one output stream")
	}
	if !req.GetStdin() && !req.GetStdout() && !req.GetStderr() {
		return nil, invalid("Attach: one of stdin, stdout or stderr must be set")
	}
	tgt, err := s.Sandboxes.RunningContainer(req.GetContainerId())
	if err != nil {
		return nil, toStatus(err)
	}
	r := &runtimeapi.AttachRequest{ContainerId: tgt.ID, Tty: req.GetTty(),
		Stdin: req.GetStdin(), Stdout: req.GetStdout(), Stderr: req.GetStderr()}
	return s.Streaming.GetAttach(r)
}
