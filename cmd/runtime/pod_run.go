package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/husk-runtime/husk/kubepod"
	"github.com/husk-runtime/husk/podrun"
	"github.com/spf13/cobra"
)

// podRunOptions are husk pod run's flags.
type podRunOptions struct {
	file       string
	configMaps []string // more ConfigMaps and Secrets (podman's --configmap)
	detach     bool
	keep       bool
}

func podRunCmd() *cobra.Command {
	var o podRunOptions
	cmd := &cobra.Command{
		Use:   "run -f FILE",
		Short: "Run the Pods of a manifest",
		Long: `Run every Pod of a manifest (YAML or JSON, several documents allowed).
Workloads run as their controllers would make their pods: a Deployment,
ReplicaSet or StatefulSet its replicas (named <deployment>-<hash>-<random>,
<statefulset>-<ordinal>...), a DaemonSet one pod; a Job (or a CronJob's,
once, now) runs pods until its completions succeed, at most parallelism at
once, and fails (exit 1) past its backoffLimit. Images are pulled per
imagePullPolicy, init containers run to completion in order (one that
fails stops the pod, as kubelet does with restartPolicy Never), then the
app containers start, each followed by its postStart hook.

In the foreground, husk pod run streams the containers' logs, runs their
startup, liveness and readiness probes (exec, httpGet, tcpSocket, gRPC;
husk ps and husk pod ls show READY) and restarts them as the pod's
restartPolicy says, with kubelet's back-off. It returns when every app
container is done for good; Ctrl-C (or SIGTERM) stops the pod: preStop
hooks first, then SIGTERM, SIGKILL after the grace period. Either way the
pod is then removed, unless --keep.

With --detach it returns once the app containers are started. A detached
pod has no supervisor: its containers are NOT restarted when they exit,
whatever its restartPolicy says, and no probe runs. Stop and remove it
with husk pod rm, or everything of the manifest with husk pod down.

ConfigMaps and Secrets in the manifest (or in --configmap files) feed the
Pods' env, envFrom and configMap, secret and projected volumes; a Secret's
volume is a tmpfs, never on disk.

Containers without a seccompProfile run with the runtime's default
profile (kubelet's seccompDefault: true).`,
		Example: `  husk pod run -f web.yaml
  husk pod run --detach -f web.yaml
  husk pod run -f web.yaml --configmap settings.yaml --configmap creds.yaml
  kubectl create deployment web --image=nginx --dry-run=client -o yaml | husk pod run -f -
  husk --endpoint unix:///run/containerd/containerd.sock pod run -f web.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.file == "" {
				return errors.New("-f FILE is required (- for stdin)")
			}
			return runPods(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "filename", "f", "", "manifest to run (- for stdin)")
	f.StringArrayVar(&o.configMaps, "configmap", nil, "a file of ConfigMaps and Secrets the Pods may use (repeatable)")
	f.BoolVarP(&o.detach, "detach", "d", false, "return once the pod is started; a detached pod's containers are not restarted")
	f.BoolVar(&o.keep, "keep", false, "leave the pod (stopped) when husk pod run ends or fails, for inspection")
	return cmd
}

func readManifest(file string, configMaps []string) ([]kubepod.Source, error) {
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
	for _, name := range configMaps {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("--configmap: %w", err)
		}
		// Every Source shares the manifest's one Objects.
		warns, err := srcs[0].Objects.ReadObjects(f, name)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("--configmap %s: %w", name, err)
		}
		for _, w := range warns {
			warnf("%s", w)
		}
	}
	return srcs, nil
}

// manifestPath is the manifest's absolute path, which pod records keep
// for husk pod down; empty for stdin.
func manifestPath(file string) (string, error) {
	if file == "-" {
		return "", nil
	}
	return filepath.Abs(file)
}

func runPods(parent context.Context, o podRunOptions) error {
	file, detach, keep := o.file, o.detach, o.keep
	srcs, err := readManifest(file, o.configMaps)
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
	abs, err := manifestPath(file)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return r.Run(ctx, srcs, dns, podrun.RunOptions{Detach: detach, Keep: keep, File: abs, Release: stop})
}
