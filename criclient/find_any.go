package criclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StdioConfig is how a container's stdio was set up at creation.
type StdioConfig struct {
	Stdin     bool `json:"stdin"`
	StdinOnce bool `json:"stdin_once"`
	Tty       bool `json:"tty"`
}

// ContainerStdio reads the container's stdin and tty settings from the
// verbose ContainerStatus: both husk and containerd put the creation
// config there, under info's "config" key (the CRI ContainerConfig's JSON
// field names). known is false when the runtime does not say.
func (c *Client) ContainerStdio(ctx context.Context, id string) (cfg StdioConfig, known bool) {
	cctx, cancel := c.Ctx(ctx)
	defer cancel()
	resp, err := c.Runtime.ContainerStatus(cctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		return cfg, false
	}
	var info struct {
		Config *StdioConfig `json:"config"`
	}
	if json.Unmarshal([]byte(resp.Info["info"]), &info) != nil || info.Config == nil {
		return cfg, false
	}
	return *info.Config, true
}

// FindAny resolves ID|NAME to a container or a pod: an exact ID first, then
// a unique ID prefix among both, then a name that only one of them has.
func (c *Client) FindAny(ctx context.Context, ref, kind string) (*runtimeapi.Container, *runtimeapi.PodSandbox, error) {
	cctx, cancel := c.Ctx(ctx)
	defer cancel()
	cr, err := c.Runtime.ListContainers(cctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, nil, Wrap(err, "list containers")
	}
	pr, err := c.Runtime.ListPodSandbox(cctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return nil, nil, Wrap(err, "list pods")
	}
	ctrs, pods := cr.Containers, pr.Items
	if kind == "pod" {
		ctrs = nil
	}
	if kind == "container" {
		pods = nil
	}
	var pc []*runtimeapi.Container
	var pp []*runtimeapi.PodSandbox
	for _, ct := range ctrs {
		if ct.Id == ref {
			return ct, nil, nil
		}
		if strings.HasPrefix(ct.Id, ref) {
			pc = append(pc, ct)
		}
	}
	for _, p := range pods {
		if p.Id == ref {
			return nil, p, nil
		}
		if strings.HasPrefix(p.Id, ref) {
			pp = append(pp, p)
		}
	}
	switch {
	case len(pc)+len(pp) > 1:
		return nil, nil, fmt.Errorf("ID prefix %q is ambiguous: %d containers and %d pods match", ref, len(pc), len(pp))
	case len(pc) == 1:
		return pc[0], nil, nil
	case len(pp) == 1:
		return nil, pp[0], nil
	}
	ct, cerr := PickContainer(ctrs, pr.Items, ref)
	p, perr := PickPod(pods, ref)
	switch {
	case cerr == nil && perr == nil:
		return nil, nil, fmt.Errorf("%q is pod %s and container %s: use an ID or --type pod|container", ref, ShortID(p.Id), ShortID(ct.Id))
	case cerr == nil:
		return ct, nil, nil
	case perr == nil:
		return nil, p, nil
	case !errors.Is(cerr, ErrNotFound):
		return nil, nil, cerr
	case !errors.Is(perr, ErrNotFound):
		return nil, nil, perr
	}
	return nil, nil, fmt.Errorf("no container or pod %q: %w", ref, ErrNotFound)
}
