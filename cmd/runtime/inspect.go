package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func inspectCmd() *cobra.Command {
	var output, kind string
	cmd := &cobra.Command{
		Use:   "inspect ID|NAME",
		Short: "Show the verbose status of a container or a pod",
		Long: `Show the verbose CRI status of a container (ContainerStatus) or a pod
(PodSandboxStatus), with the runtime's extra information, like crictl
inspect / inspectp. ID|NAME is an ID, a unique ID prefix, a name,
namespace/name for a pod or pod/name for a container. When a name is both a
pod's and a container's, say which with --type.`,
		Example: `  husk inspect 4f2a
  husk inspect --type pod web -o yaml
  husk inspect web/server`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, outJSON, outYAML); err != nil {
				return err
			}
			if kind != "" && kind != "pod" && kind != "container" {
				return fmt.Errorf("--type %q: want pod or container", kind)
			}
			c, err := dial(10 * time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := cmd.Context()
			ct, pod, err := c.findAny(ctx, args[0], kind)
			if err != nil {
				return err
			}
			cctx, cancel := c.ctx(ctx)
			defer cancel()
			out := struct {
				Status json.RawMessage            `json:"status"`
				Info   map[string]json.RawMessage `json:"info,omitempty"`
			}{}
			var info map[string]string
			if ct != nil {
				resp, err := c.rt.ContainerStatus(cctx, &runtimeapi.ContainerStatusRequest{ContainerId: ct.Id, Verbose: true})
				if err != nil {
					return rpcErr(err, "status of container %s", shortID(ct.Id))
				}
				if out.Status, err = protoJSON(resp.Status); err != nil {
					return err
				}
				info = resp.Info
			} else {
				resp, err := c.rt.PodSandboxStatus(cctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod.Id, Verbose: true})
				if err != nil {
					return rpcErr(err, "status of pod %s", shortID(pod.Id))
				}
				if out.Status, err = protoJSON(resp.Status); err != nil {
					return err
				}
				info = resp.Info
			}
			// Runtimes put JSON in the info values (husk and containerd an
			// "info" key): embed it as JSON, not as a quoted string.
			if len(info) > 0 {
				out.Info = map[string]json.RawMessage{}
				for k, v := range info {
					if json.Valid([]byte(v)) {
						out.Info[k] = json.RawMessage(v)
					} else {
						b, _ := json.Marshal(v)
						out.Info[k] = b
					}
				}
			}
			return printStructured(os.Stdout, output, out)
		},
	}
	addOutputFlag(cmd, &output, outJSON, outJSON, outYAML)
	cmd.Flags().StringVar(&kind, "type", "", "what ID|NAME names: pod or container (default: whichever matches)")
	return cmd
}

// findAny resolves ID|NAME to a container or a pod: an exact ID first, then
// a unique ID prefix among both, then a name that only one of them has.
func (c *criClient) findAny(ctx context.Context, ref, kind string) (*runtimeapi.Container, *runtimeapi.PodSandbox, error) {
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	cr, err := c.rt.ListContainers(cctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, nil, rpcErr(err, "list containers")
	}
	pr, err := c.rt.ListPodSandbox(cctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return nil, nil, rpcErr(err, "list pods")
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
	ct, cerr := pickContainer(ctrs, pr.Items, ref)
	p, perr := pickPod(pods, ref)
	switch {
	case cerr == nil && perr == nil:
		return nil, nil, fmt.Errorf("%q is pod %s and container %s: use an ID or --type pod|container", ref, shortID(p.Id), shortID(ct.Id))
	case cerr == nil:
		return ct, nil, nil
	case perr == nil:
		return nil, p, nil
	case !errors.Is(cerr, errNotFound):
		return nil, nil, cerr
	case !errors.Is(perr, errNotFound):
		return nil, nil, perr
	}
	return nil, nil, fmt.Errorf("no container or pod %q: %w", ref, errNotFound)
}
