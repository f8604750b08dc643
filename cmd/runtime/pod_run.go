package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/husk-runtime/husk/kubepod"
	"github.com/husk-runtime/husk/podrun"
	"github.com/spf13/cobra"
)

func podRunCmd() *cobra.Command {
	var file string
	var detach, keep bool
	cmd := &cobra.Command{
		Use:   "run -f FILE",
		Short: "Run the Pods of a manifest",
		Long: `Run every Pod of a manifest (YAML or JSON, several documents allowed; the
pod template of a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or
CronJob is run once). Images are pulled per imagePullPolicy, init
containers run to completion in order (one that fails stops the pod, as
kubelet does with restartPolicy Never), then the app containers start.

In the foreground, husk pod run streams the containers' logs, runs their
liveness probes (exec, httpGet, tcpSocket; a container failing one is
stopped) and restarts them as the pod's restartPolicy says, with kubelet's
back-off. It returns
when every app container is done for good; Ctrl-C (or SIGTERM) stops the
pod. Either way the pod is then removed, unless --keep.

With --detach it returns once the app containers are started. A detached
pod has no supervisor: its containers are NOT restarted when they exit,
whatever its restartPolicy says, and no probe runs. Stop and remove it with husk pod rm.

Containers without a seccompProfile run with the runtime's default
profile (kubelet's seccompDefault: true).`,
		Example: `  husk pod run -f web.yaml
  husk pod run --detach -f web.yaml
  kubectl create deployment web --image=nginx --dry-run=client -o yaml | husk pod run -f -
  husk --endpoint unix:///run/containerd/containerd.sock pod run -f web.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return errors.New("-f FILE is required (- for stdin)")
			}
			return runPods(cmd.Context(), file, detach, keep)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "filename", "f", "", "manifest to run (- for stdin)")
	f.BoolVarP(&detach, "detach", "d", false, "return once the pod is started; a detached pod's containers are not restarted")
	f.BoolVar(&keep, "keep", false, "leave the pod (stopped) when husk pod run ends or fails, for inspection")
	return cmd
}

func readManifest(file string) ([]kubepod.Source, error) {
	var r io.Reader = os.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("read manifest: %w", err)
		}
		defer f.Close()
		r = f
	}
	srcs, warns, err := kubepod.Decode(r)
	for _, w := range warns {
		warnf("%s", w)
	}
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", file, err)
	}
	return srcs, nil
}

func runPods(parent context.Context, file string, detach, keep bool) error {
	srcs, err := readManifest(file)
	if err != nil {
		return err
	}
	c, err := dial(2 * time.Minute)
	if err != nil {
		return err
	}
	defer c.Close()
	r := newRunner(c)
	dns, err := podrun.HostDNS()
	if err != nil {
		return err
	}
	var plans []*kubepod.Plan
	var origins []string
	for _, s := range srcs {
		p, err := r.Plan(s, dns, len(srcs) > 1)
		if err != nil {
			return err
		}
		plans = append(plans, p)
		origins = append(origins, s.Origin)
	}
	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return r.Run(ctx, plans, podrun.RunOptions{Detach: detach, Keep: keep, Origins: origins, Release: stop})
}
