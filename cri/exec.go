package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Exec prepares a streaming exec and returns its URL on the streaming
// server. CRI: cmd is required; tty and stderr together are invalid (a pty
// has one output stream), and at least one stream must be asked for. The
// container must exist (NotFound) and be running (FailedPrecondition): the
// checks are made here, where kubelet reads the gRPC code, because on the
// stream a failure is only a message. The URL's token is single-use and
// expires if unused.
func (s *Server) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("Exec: container_id is required")
	}
	if len(req.GetCmd()) == 0 {
		return nil, invalid("Exec: cmd is required")
	}
	if req.GetTty() && req.GetStderr() {
		return nil, invalid("Exec: tty and stderr cannot both be set: a terminal has one output stream")
	}
	if !req.GetStdin() && !req.GetStdout() && !req.GetStderr() {
		return nil, invalid("Exec: one of stdin, stdout or stderr must be set")
	}
	tgt, err := s.Sandboxes.RunningContainer(req.GetContainerId())
	if err != nil {
		return nil, toStatus(err)
	}
	// The URL names the full id: a prefix could match another container
	// by the time the client connects.
	r := &runtimeapi.ExecRequest{ContainerId: tgt.ID, Cmd: req.GetCmd(), Tty: req.GetTty(),
		Stdin: req.GetStdin(), Stdout: req.GetStdout(), Stderr: req.GetStderr()}
	return s.Streaming.GetExec(r)
}
