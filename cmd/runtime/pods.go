package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func podsCmd() *cobra.Command {
	var output, name, namespace, state string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "pods",
		Short: "List pod sandboxes (like crictl pods)",
		Example: `  husk pods
  husk pods --name web --namespace default
  husk pods --state ready -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, outTable, outJSON, outYAML); err != nil {
				return err
			}
			re, err := regexp.Compile(name)
			if err != nil {
				return fmt.Errorf("--name: %w", err)
			}
			c, ctx, done, err := dialCall(cmd.Context(), 10*time.Second)
			if err != nil {
				return err
			}
			defer done()
			filter := &runtimeapi.PodSandboxFilter{}
			switch strings.ToLower(state) {
			case "":
			case "ready":
				filter.State = &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}
			case "notready":
				filter.State = &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}
			default:
				return fmt.Errorf("--state %q: want ready or notready", state)
			}
			resp, err := c.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: filter})
			if err != nil {
				return criclient.Wrap(err, "list pods")
			}
			var items []*runtimeapi.PodSandbox
			for _, p := range resp.Items {
				if re.MatchString(p.GetMetadata().GetName()) && (namespace == "" || p.GetMetadata().GetNamespace() == namespace) {
					items = append(items, p)
				}
			}
			sortPods(items)
			if quiet {
				for _, p := range items {
					fmt.Println(p.Id)
				}
				return nil
			}
			if output != outTable {
				return printProto(os.Stdout, output, &runtimeapi.ListPodSandboxResponse{Items: items})
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 3, ' ', 0)
			fmt.Fprintln(w, "POD ID\tCREATED\tSTATE\tNAME\tNAMESPACE\tATTEMPT\tRUNTIME")
			for _, p := range items {
				rt := p.RuntimeHandler
				if rt == "" {
					rt = "(default)"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", criclient.ShortID(p.Id), ago(p.CreatedAt), podState(p.State),
					p.GetMetadata().GetName(), p.GetMetadata().GetNamespace(), p.GetMetadata().GetAttempt(), rt)
			}
			return w.Flush()
		},
	}
	f := cmd.Flags()
	addOutputFlag(cmd, &output, outTable, outTable, outJSON, outYAML)
	f.StringVar(&name, "name", "", "show pods whose name matches this regular expression")
	f.StringVar(&namespace, "namespace", "", "show pods of this namespace")
	f.StringVarP(&state, "state", "s", "", "show pods in this state: ready, notready")
	f.BoolVarP(&quiet, "quiet", "q", false, "print pod IDs only")
	return cmd
}
