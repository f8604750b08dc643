package shim

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/husk-runtime/husk/atomicfile"
)

// reopenLog points a container's log at a fresh file at its path, which
// kubelet's log rotation has just renamed away. CRI: when this fails no new
// file may be created afterwards, so the new file is opened before the old
// one is let go, and on failure the old one stays in use.
func (s *Server) reopenLog(req *Request) (*Response, error) {
	c, err := s.get(req.ID)
	if err != nil {
		return nil, err
	}
	if c.log == nil {
		return nil, errorf(CodeBadRequest, "container %s has no log", c.id)
	}
	if err := c.log.reopen(); err != nil {
		return nil, fmt.Errorf("reopen log of container %s: %w", c.id, err)
	}
	return &Response{}, nil
}

// update applies new resource limits to a running container.
func (s *Server) update(req *Request) (*Response, error) {
	c, err := s.getIn(req.ID, StatusRunning)
	if err != nil {
		return nil, err
	}
	if req.Resources == nil {
		return nil, errorf(CodeBadRequest, "update of %s: no resources", c.id)
	}
	dir, err := s.scratch(".update-")
	if err != nil {
		return nil, fmt.Errorf("update of %s: %w", c.id, err)
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "resources.json")
	if err := atomicfile.WriteJSON(file, req.Resources); err != nil {
		return nil, fmt.Errorf("update of %s: %w", c.id, err)
	}
	if _, err := s.runOCI(ociCall{cmd: "update", id: c.id, resources: file}, ociIO{}); err != nil {
		return nil, s.stoppedUnder(c, "update", err)
	}
	return &Response{}, nil
}
