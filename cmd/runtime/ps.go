package main

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"github.com/husk-runtime/husk/kubepod"
	"github.com/husk-runtime/husk/podrun"
	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func psCmd() *cobra.Command {
	var output, name, pod, state string
	var all, quiet bool
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "List containers (like crictl ps)",
		Example: `  husk ps
  husk ps -a --name '^web'
  husk ps --pod 4f2a -o json`,
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
			filter := &runtimeapi.ContainerFilter{}
			if pod != "" {
				p, err := c.FindPod(cmd.Context(), pod)
				if err != nil {
					return err
				}
				filter.PodSandboxId = p.Id
			}
			if state != "" {
				v, ok := runtimeapi.ContainerState_value["CONTAINER_"+strings.ToUpper(state)]
				if !ok {
					return fmt.Errorf("--state %q: want created, running, exited or unknown", state)
				}
				filter.State = &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState(v)}
			} else if !all {
				filter.State = &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}
			}
			resp, err := c.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: filter})
			if err != nil {
				return criclient.Wrap(err, "list containers")
			}
			pods, err := c.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
			if err != nil {
				return criclient.Wrap(err, "list pods")
			}
			// Containers are created from image IDs, as kubelet does: show
			// the image's name instead, as crictl does.
			imageNames := map[string]string{}
			if imgs, err := c.Images.ListImages(ctx, &runtimeapi.ListImagesRequest{}); err == nil {
				for _, im := range imgs.Images {
					if len(im.RepoTags) > 0 {
						imageNames[im.Id] = im.RepoTags[0]
					} else if len(im.RepoDigests) > 0 {
						imageNames[im.Id] = im.RepoDigests[0]
					}
				}
			}
			podNames := map[string]string{}
			for _, p := range pods.Items {
				podNames[p.Id] = p.GetMetadata().GetName()
			}
			var items []*runtimeapi.Container
			for _, ct := range resp.Containers {
				if re.MatchString(ct.GetMetadata().GetName()) {
					items = append(items, ct)
				}
			}
			sort.Slice(items, func(i, j int) bool { return items[i].CreatedAt > items[j].CreatedAt })
			if quiet {
				for _, ct := range items {
					fmt.Println(ct.Id)
				}
				return nil
			}
			if output != outTable {
				return printProto(os.Stdout, output, &runtimeapi.ListContainersResponse{Containers: items})
			}
			ready := readiness(pods.Items) // the table's only: status files read per pod
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 3, ' ', 0)
			fmt.Fprintln(w, "CONTAINER\tIMAGE\tCREATED\tSTATE\tNAME\tATTEMPT\tPOD ID\tPOD\tREADY")
			for _, ct := range items {
				img := ct.GetImage().GetUserSpecifiedImage()
				if img == "" {
					img = ct.GetImage().GetImage()
				}
				if n, ok := imageNames[img]; ok {
					img = n
				} else if n, ok := imageNames[ct.ImageRef]; ok && img == "" {
					img = n
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", criclient.ShortID(ct.Id), img, ago(ct.CreatedAt),
					strings.TrimPrefix(ct.State.String(), "CONTAINER_"), ct.GetMetadata().GetName(), ct.GetMetadata().GetAttempt(),
					criclient.ShortID(ct.PodSandboxId), podNames[ct.PodSandboxId], ready.of(ct))
			}
			return w.Flush()
		},
	}
	f := cmd.Flags()
	addOutputFlag(cmd, &output, outTable, outTable, outJSON, outYAML)
	f.BoolVarP(&all, "all", "a", false, "show all containers, not only running ones")
	f.StringVar(&name, "name", "", "show containers whose name matches this regular expression")
	f.StringVarP(&pod, "pod", "p", "", "show the containers of this pod (NAME or ID)")
	f.StringVarP(&state, "state", "s", "", "show containers in this state: created, running, exited, unknown")
	f.BoolVarP(&quiet, "quiet", "q", false, "print container IDs only")
	f.StringVar(&podFlags.stateDir, "state-dir", defaultStateDir, "where husk pod run keeps what its supervisor knows (the READY column)")
	return cmd
}

// podReadiness is what foreground husk pod runs report of their pods'
// probes (podrun.ProbeStatus), by sandbox id.
type podReadiness map[string]*podrun.ProbeStatus

func readiness(pods []*runtimeapi.PodSandbox) podReadiness {
	out := podReadiness{}
	for _, p := range pods {
		if p.Labels[kubepod.LabelManaged] != "true" {
			continue
		}
		if ps, err := podrun.ReadProbeStatus(podFlags.stateDir, p.GetMetadata().GetUid()); err == nil && ps != nil {
			out[p.Id] = ps
		}
	}
	return out
}

// of is a container's READY column: true or false as kubelet would
// report it, "started" for one whose startup probe passed and that is
// not ready yet, "-" when nothing probes it (not a pod of a foreground
// husk pod run, or an older attempt).
func (r podReadiness) of(ct *runtimeapi.Container) string {
	cp, ok := r[ct.PodSandboxId].Lookup(ct.GetMetadata().GetName(), ct.Id)
	switch {
	case !ok:
		return "-"
	case cp.Ready:
		return "true"
	case cp.Started:
		return "started"
	}
	return "false"
}

func (r podReadiness) ready(pod string, ctrs []*runtimeapi.Container) (ready, total int, known bool) {
	ps := r[pod]
	for _, ct := range ctrs {
		if ct.PodSandboxId != pod || ct.Labels[kubepod.LabelContainerKind] == "init" {
			continue
		}
		cp, ok := ps.Lookup(ct.GetMetadata().GetName(), ct.Id)
		if !ok {
			continue
		}
		known, total = true, total+1
		if cp.Ready {
			ready++
		}
	}
	return ready, total, known
}

func sortPods(items []*runtimeapi.PodSandbox) {
	sort.Slice(items, func(i, j int) bool { return items[i].CreatedAt > items[j].CreatedAt })
}
