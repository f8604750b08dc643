package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/husk-runtime/husk/criclient"
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
			ct, pod, err := c.FindAny(ctx, args[0], kind)
			if err != nil {
				return err
			}
			cctx, cancel := c.Ctx(ctx)
			defer cancel()
			out := struct {
				Status json.RawMessage            `json:"status"`
				Info   map[string]json.RawMessage `json:"info,omitempty"`
			}{}
			var info map[string]string
			if ct != nil {
				resp, err := c.Runtime.ContainerStatus(cctx, &runtimeapi.ContainerStatusRequest{ContainerId: ct.Id, Verbose: true})
				if err != nil {
					return criclient.Wrap(err, "status of container %s", criclient.ShortID(ct.Id))
				}
				if out.Status, err = protoJSON(resp.Status); err != nil {
					return err
				}
				info = resp.Info
			} else {
				resp, err := c.Runtime.PodSandboxStatus(cctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod.Id, Verbose: true})
				if err != nil {
					return criclient.Wrap(err, "status of pod %s", criclient.ShortID(pod.Id))
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
