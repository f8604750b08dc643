package main

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"github.com/husk-runtime/husk/kubepod"
	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func podLsCmd() *cobra.Command {
	var output string
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the pods started by husk pod run",
		Example: `  husk pod ls
  husk pod ls -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, outTable, outJSON, outYAML); err != nil {
				return err
			}
			c, ctx, done, err := dialCall(cmd.Context(), 10*time.Second)
			if err != nil {
				return err
			}
			defer done()
			pods, err := c.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
				LabelSelector: map[string]string{kubepod.LabelManaged: "true"}}})
			if err != nil {
				return criclient.Wrap(err, "list pods")
			}
			ctrs, err := c.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
				LabelSelector: map[string]string{kubepod.LabelManaged: "true"}}})
			if err != nil {
				return criclient.Wrap(err, "list containers")
			}
			sortPods(pods.Items)
			if quiet {
				for _, p := range pods.Items {
					fmt.Println(p.Id)
				}
				return nil
			}
			if output != outTable {
				return printProto(os.Stdout, output, pods)
			}
			running, total := map[string]int{}, map[string]map[string]bool{}
			for _, ct := range ctrs.Containers {
				if total[ct.PodSandboxId] == nil {
					total[ct.PodSandboxId] = map[string]bool{}
				}
				total[ct.PodSandboxId][ct.GetMetadata().GetName()] = true
				if ct.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
					running[ct.PodSandboxId]++
				}
			}
			rd := readiness(pods.Items)
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 3, ' ', 0)
			fmt.Fprintln(w, "POD ID\tNAME\tNAMESPACE\tSTATE\tRUNNING\tREADY\tRESTART POLICY\tCREATED")
			for _, p := range pods.Items {
				// READY as kubectl shows it, of the app containers and
				// sidecars; "-" when no supervisor probes the pod.
				ready := "-"
				if n, of, ok := rd.ready(p.Id, ctrs.Containers); ok {
					ready = fmt.Sprintf("%d/%d", n, of)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", criclient.ShortID(p.Id), p.GetMetadata().GetName(), p.GetMetadata().GetNamespace(),
					podState(p.State), running[p.Id], len(total[p.Id]), ready, p.Annotations[kubepod.AnnotationRestartPolicy], ago(p.CreatedAt))
			}
			return w.Flush()
		},
	}
	addOutputFlag(cmd, &output, outTable, outTable, outJSON, outYAML)
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print pod IDs only")
	return cmd
}

func podState(s runtimeapi.PodSandboxState) string {
	switch s {
	case runtimeapi.PodSandboxState_SANDBOX_READY:
		return "Ready"
	case runtimeapi.PodSandboxState_SANDBOX_NOTREADY:
		return "NotReady"
	}
	return s.String()
}
