package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/husk-runtime/husk/atomicfile"
	"github.com/husk-runtime/husk/kubepod"
	"github.com/spf13/cobra"
)

// podGenerateOptions are husk pod generate's flags.
type podGenerateOptions struct {
	file string
}

func podGenerateCmd() *cobra.Command {
	var o podGenerateOptions
	cmd := &cobra.Command{
		Use:   "generate NAME|ID",
		Short: "Write the Pod manifest of a pod, which husk pod run -f runs again the same",
		Long: `Write a Kubernetes Pod manifest (YAML) of a pod, running or stopped, made
from the CRI configs husk pod run created it with (kept in the pod's
record): husk pod run -f on it makes a pod with the same configs, under a
new uid. Remove the pod first, or change the manifest's name.

The configs give back the labels and annotations, hostname, host
namespaces, DNS (dnsPolicy Default when it is the node's resolv.conf),
sysctls, ports (all on the first container), init containers and sidecars,
command, args, env, working dir, stdin and tty, mounts (as emptyDir and
hostPath volumes), cpu and memory requests and limits (a memory request as
its oom_score_adj tells it), security contexts, the preStop hook,
restartPolicy and terminationGracePeriodSeconds; the record adds the
probes, the postStart hook and terminationMessagePolicy. Images are the
manifest's, with imagePullPolicy IfNotPresent. Env values are written as
they were resolved, those from ConfigMaps and Secrets too: mind where the
file goes.

What neither holds is not reproduced: imagePullSecrets, port names, the files of
configMap, secret and projected volumes (they become emptyDirs), hostPath
types, the workload a replica came from. Each loss found is reported on
stderr as a note.

A pod husk pod run did not start is generated from the configs its
runtime reports in its verbose status (containerd does); husk's daemon
does not report them, which is an error.`,
		Example: `  husk pod generate web > web.yaml
  husk pod generate -f web.yaml default/web
  husk pod generate -f web.yaml web && husk pod rm web && husk pod run --detach -f web.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return generatePod(cmd.Context(), args[0], o)
		},
	}
	cmd.Flags().StringVarP(&o.file, "filename", "f", "", "write the manifest to FILE instead of stdout")
	return cmd
}

func generatePod(ctx context.Context, ref string, o podGenerateOptions) error {
	c, err := dial(10 * time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	p, err := c.FindPod(ctx, ref)
	if err != nil {
		return err
	}
	r := newRunner(c)
	md := p.GetMetadata()
	sb, ctrs, err := r.Configs(ctx, p.Id, md.GetUid())
	if err != nil {
		return err
	}
	gopts, err := r.GenerateOptions(md.GetUid())
	if err != nil {
		return err
	}
	gopts.RuntimeHandler = p.RuntimeHandler
	pod, notes, err := kubepod.Generate(sb, ctrs, gopts)
	if err != nil {
		return fmt.Errorf("generate pod %s/%s: %w", md.GetNamespace(), md.GetName(), err)
	}
	for _, n := range notes {
		fmt.Fprintf(os.Stderr, "note: %s\n", n)
	}
	b, err := kubepod.PodYAML(pod)
	if err != nil {
		return err
	}
	if o.file == "" || o.file == "-" {
		_, err = os.Stdout.Write(b)
		return err
	}
	// Atomic: a failed write must not leave half a manifest where the
	// old one was.
	return atomicfile.Write(o.file, b, 0o644)
}
