package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func completionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Long: `Print the completion script of a shell. Besides commands and flags it
completes container names for exec, attach and stats and pod names for
port-forward, top and stats --pods, asking the runtime at --endpoint (one
list call with a 2s limit; nothing is completed if the runtime does not
answer).`,
		Example: `  source <(husk completion bash)                      # this bash session
  husk completion bash > /etc/bash_completion.d/husk  # every bash session
  husk completion zsh > "${fpath[1]}/_husk"
  husk completion fish > ~/.config/fish/completions/husk.fish`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"bash", "zsh", "fish"},
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(os.Stdout, true)
			case "zsh":
				return root.GenZshCompletion(os.Stdout)
			case "fish":
				return root.GenFishCompletion(os.Stdout, true)
			}
			return fmt.Errorf("completion %q: want bash, zsh or fish", args[0])
		},
	}
}

// completionTimeout bounds the CRI calls of a completion: a shell waiting
// on a hung runtime is worse than no suggestions.
const completionTimeout = 2 * time.Second

// completeContainers completes the first argument with container names
// (and IDs when a name is ambiguous), of running containers only when
// running is set; later arguments are not completed.
func completeContainers(running bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := dial(completionTimeout)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
		defer cancel()
		filter := &runtimeapi.ContainerFilter{}
		if running {
			filter.State = &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}
		}
		resp, err := c.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: filter})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return containerCompletions(resp.Containers), cobra.ShellCompDirectiveNoFileComp
	}
}

// containerCompletions are the names of cs, described by their pod; a name
// that several containers share is offered as each one's ID instead.
func containerCompletions(cs []*runtimeapi.Container) []cobra.Completion {
	count := map[string]int{}
	for _, ct := range cs {
		count[ct.GetMetadata().GetName()]++
	}
	var out []cobra.Completion
	for _, ct := range cs {
		name := ct.GetMetadata().GetName()
		desc := "pod " + criclient.ShortID(ct.PodSandboxId)
		if count[name] > 1 {
			out = append(out, cobra.CompletionWithDesc(criclient.ShortID(ct.Id), name+", "+desc))
			continue
		}
		out = append(out, cobra.CompletionWithDesc(name, desc))
	}
	sort.Strings(out)
	return out
}

// completePods completes the first argument with pod names (namespace/name
// when a name is in several namespaces).
func completePods(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := dial(completionTimeout)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
	defer cancel()
	resp, err := c.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return podCompletions(resp.Items), cobra.ShellCompDirectiveNoFileComp
}

func podCompletions(ps []*runtimeapi.PodSandbox) []cobra.Completion {
	namespaces := map[string]map[string]bool{}
	for _, p := range ps {
		n := p.GetMetadata().GetName()
		if namespaces[n] == nil {
			namespaces[n] = map[string]bool{}
		}
		namespaces[n][p.GetMetadata().GetNamespace()] = true
	}
	seen := map[string]bool{}
	var out []cobra.Completion
	for _, p := range ps {
		n, ns := p.GetMetadata().GetName(), p.GetMetadata().GetNamespace()
		v := n
		if len(namespaces[n]) > 1 {
			v = ns + "/" + n
		}
		if seen[v] {
			continue
		}
		seen[v] = true
		out = append(out, cobra.CompletionWithDesc(v, "namespace "+ns+", "+podState(p.State)))
	}
	sort.Strings(out)
	return out
}
