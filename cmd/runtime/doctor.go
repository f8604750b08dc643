package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/husk-runtime/husk/config"
	"github.com/husk-runtime/husk/criclient"
	"github.com/husk-runtime/husk/doctor"
	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// doctorReport is `husk doctor -o json`.
type doctorReport struct {
	// Source is where the live pods came from: "daemon", or "records"
	// when the daemon could not be asked.
	Source    string            `json:"source"`
	Checks    []doctor.Check    `json:"checks"`
	Leftovers []doctor.Leftover `json:"leftovers"`
	// With --fix: what was done, and what an audit after it still finds.
	Fixed     []doctor.Action   `json:"fixed,omitempty"`
	Remaining []doctor.Leftover `json:"remaining,omitempty"`
}

func doctorCmd() *cobra.Command {
	var cfgPath, output string
	var fix bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the node and the runtime, and find (or --fix) husk's leftovers",
		Long: `Checks what husk needs of the node: kernel features (overlayfs, cgroup
controllers, namespaces, user namespaces, seccomp, AppArmor), the CNI config
and plugins, the registry mirror config (hosts.toml) and auth file. Then
audits the node for husk's leftovers: shims, mounts, network namespaces,
veths on husk's bridge, IP leases, CNI cache entries, cgroups and state dirs
that belong to no pod the runtime knows.

The live pods are asked of the daemon at --endpoint (default: the socket of
the configuration). If it cannot be asked, the audit goes by the pod records
on disk instead, and says so; that is the more careful choice (every recorded
pod counts as live).

Only what is provably husk's is ever reported or removed: things under husk's
root and state dirs, on husk's bridge, in husk's IPAM dir, shims on husk's
socket dir, and /husk/<id> cgroups whose id husk's dirs name too. Another
runtime's netns, cgroups or veths are never touched.

--fix removes the leftovers in a safe order (kill the shim, unmount, CNI DEL
or release the lease and delete the veth, unpin the netns, remove the cgroup,
remove the dirs), prints what it removed, and audits again. It can be run
again: what is gone already is fine.

Exit status: 0 when no check fails and no leftover is (left) found; 1 when a
check fails, leftovers exist (after --fix: could not be removed), or doctor
itself could not run.`,
		Example: `  husk doctor
  husk doctor -o json
  husk doctor --fix
  husk doctor --config /tmp/h/config.toml --endpoint unix:///tmp/h/husk.sock`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, outTable, outJSON); err != nil {
				return err
			}
			cfg, err := config.Load(cfgPath, cmd.Flags().Changed("config"))
			if err != nil {
				return err
			}
			endpoint := "unix://" + cfg.Socket
			if cmd.Flags().Changed("endpoint") {
				endpoint = clientFlags.endpoint
			}
			return runDoctor(cmd.Context(), os.Stdout, cfgPath, cfg, endpoint, fix, output)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", config.DefaultPath, "husk's configuration file (TOML), to know its root, state, CNI and registry paths")
	cmd.Flags().BoolVar(&fix, "fix", false, "remove husk's leftovers (never another runtime's) and say what was removed")
	addOutputFlag(cmd, &output, outTable, outTable, outJSON)
	return cmd
}

func doctorConfig(cfg config.Config) doctor.Config {
	return doctor.Config{
		Root: cfg.Root, State: cfg.State,
		CNIConfDir: cfg.CNI.ConfDir, CNIBinDirs: cfg.CNI.BinDirs, Bridge: cfg.CNI.Bridge, DefaultNetwork: cfg.CNI.DefaultNetwork,
		RegistryConfigPath: cfg.Registry.ConfigPath, AuthFile: cfg.Registry.AuthFile,
	}
}

func runDoctor(ctx context.Context, w io.Writer, cfgPath string, cfg config.Config, endpoint string, fix bool, output string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	dcfg := doctorConfig(cfg)
	host, err := doctor.NewHost(dcfg)
	if err != nil {
		return err
	}
	rep := doctorReport{Leftovers: []doctor.Leftover{}}
	cfgCheck := doctor.Check{Name: "config", Status: doctor.OK, Reason: "read " + cfgPath}
	if _, err := os.Stat(cfgPath); err != nil {
		cfgCheck.Reason = "no " + cfgPath + ": the built-in defaults"
	}
	rep.Checks = append(rep.Checks, cfgCheck)

	list, daemonCheck, src := doctorLister(ctx, endpoint, cfg, dcfg, host)
	rep.Source = src
	rep.Checks = append(rep.Checks, daemonCheck)
	rep.Checks = append(rep.Checks, doctor.KernelChecks(host)...)
	rep.Checks = append(rep.Checks, doctor.CNIChecks(dcfg)...)
	rep.Checks = append(rep.Checks, doctor.RegistryChecks(dcfg)...)

	audit, err := doctor.RunAudit(ctx, dcfg, host, list)
	if err != nil {
		rep.Checks = append(rep.Checks, doctor.Check{Name: "leftovers/audit", Status: doctor.Fail, Reason: "audit failed: " + oneLineErr(err)})
	} else {
		rep.Leftovers = append(rep.Leftovers, audit.Leftovers...)
		rep.Checks = append(rep.Checks, leftoverSummary(audit, src))
		if len(audit.Foreign) > 0 {
			rep.Checks = append(rep.Checks, doctor.Check{Name: "leftovers/foreign", Status: doctor.Warn,
				Reason: fmt.Sprintf("%d %s under /husk name no pod of this husk (root %s), e.g. %s: another husk daemon on this node may own them; left alone",
					len(audit.Foreign), pluralS(len(audit.Foreign), "cgroup", "cgroups"), cfg.Root, strings.Join(audit.Foreign[:min(3, len(audit.Foreign))], ", "))})
		}
	}

	var fixErr error
	if fix && audit != nil && len(audit.Leftovers) > 0 {
		rep.Fixed, fixErr = doctor.Fix(ctx, dcfg, host, list, audit.Leftovers)
		again, err := doctor.RunAudit(ctx, dcfg, host, list)
		if err != nil {
			fixErr = errors.Join(fixErr, err)
		} else {
			rep.Remaining = again.Leftovers
		}
	}

	if output == outJSON {
		if err := printStructured(w, outJSON, rep); err != nil {
			return err
		}
	} else {
		printDoctor(w, rep, fix)
	}

	failed := 0
	for _, c := range rep.Checks {
		// The leftovers line is counted as leftovers, which --fix may
		// have removed since.
		if c.Status == doctor.Fail && c.Name != "leftovers" {
			failed++
		}
	}
	left := len(rep.Leftovers)
	if fix && audit != nil && len(audit.Leftovers) > 0 {
		left = len(rep.Remaining)
	}
	if fixErr != nil {
		return fmt.Errorf("doctor --fix: %s", oneLineErr(fixErr))
	}
	if failed > 0 || left > 0 {
		return fmt.Errorf("doctor: %d failed %s, %d %s", failed, pluralS(failed, "check", "checks"), left, pluralS(left, "leftover", "leftovers"))
	}
	return nil
}

func leftoverSummary(a *doctor.Audit, src string) doctor.Check {
	from := "the daemon's"
	if src == "records" {
		from = "the records'"
	}
	c := doctor.Check{Name: "leftovers", Status: doctor.OK,
		Reason: fmt.Sprintf("none; %d live %s (%s list)", len(a.Known.Pods), pluralS(len(a.Known.Pods), "pod", "pods"), from)}
	if n := len(a.Leftovers); n > 0 {
		c.Status = doctor.Fail
		c.Reason = fmt.Sprintf("%d husk %s of no live pod (%d live %s, %s list); `husk doctor --fix` removes them",
			n, pluralS(n, "leftover", "leftovers"), len(a.Known.Pods), pluralS(len(a.Known.Pods), "pod", "pods"), from)
	}
	return c
}

// doctorLister picks where the live pods come from. The daemon is asked
// only when it is husk serving this configuration's socket and every pod
// it lists has a record under this root: with a daemon of another root,
// this root's pods would all look dead.
func doctorLister(ctx context.Context, endpoint string, cfg config.Config, dcfg doctor.Config, host *doctor.Host) (doctor.Lister, doctor.Check, string) {
	records := doctor.FromRecords(dcfg, host.Now)
	fallback := func(why string) (doctor.Lister, doctor.Check, string) {
		return records, doctor.Check{Name: "daemon", Status: doctor.Warn, Reason: why + ": auditing from the pod records on disk instead"}, "records"
	}
	sock := strings.TrimPrefix(endpoint, "unix://")
	if filepath.Clean(sock) != filepath.Clean(cfg.Socket) {
		return fallback(fmt.Sprintf("--endpoint %s is not the socket of this configuration (%s)", endpoint, cfg.Socket))
	}
	if _, err := os.Stat(sock); err != nil {
		return fallback(fmt.Sprintf("no daemon socket at %s", sock))
	}
	old := clientFlags.endpoint
	clientFlags.endpoint = endpoint
	c, err := dial(10 * time.Second)
	clientFlags.endpoint = old
	if err != nil {
		return fallback(oneLineErr(err))
	}
	vctx, cancel := c.Ctx(ctx)
	v, err := c.Runtime.Version(vctx, &runtimeapi.VersionRequest{})
	cancel()
	if err != nil {
		c.Close()
		return fallback(fmt.Sprintf("daemon not reachable at %s (%s)", endpoint, oneLineErr(criclient.Wrap(err, "version"))))
	}
	if v.RuntimeName != "husk" {
		c.Close()
		return fallback(fmt.Sprintf("%s serves %s, not husk", endpoint, v.RuntimeName))
	}
	list := func(ctx context.Context) (doctor.Known, error) {
		k := doctor.Known{Source: "daemon", Pods: map[string]bool{}, Containers: map[string]bool{}}
		lctx, cancel := c.Ctx(ctx)
		defer cancel()
		pods, err := c.Runtime.ListPodSandbox(lctx, &runtimeapi.ListPodSandboxRequest{})
		if err != nil {
			return k, criclient.Wrap(err, "list pods")
		}
		ctrs, err := c.Runtime.ListContainers(lctx, &runtimeapi.ListContainersRequest{})
		if err != nil {
			return k, criclient.Wrap(err, "list containers")
		}
		// A pod being removed may lose its dir before the daemon stops
		// listing it, so only a daemon none of whose pods are here is
		// taken for one of another root.
		here := 0
		for _, p := range pods.Items {
			if _, err := os.Stat(filepath.Join(cfg.Root, "pods", p.Id)); err == nil {
				here++
			}
			k.Pods[p.Id] = true
		}
		if len(pods.Items) > 0 && here == 0 {
			return k, fmt.Errorf("the daemon at %s lists %d pods, none with a dir under root %s: it serves another root; not auditing against it", endpoint, len(pods.Items), cfg.Root)
		}
		for _, ct := range ctrs.Containers {
			k.Containers[ct.Id] = true
		}
		return k, nil
	}
	k, err := list(ctx)
	if err != nil {
		c.Close()
		return fallback(oneLineErr(err))
	}
	return list, doctor.Check{Name: "daemon", Status: doctor.OK,
		Reason: fmt.Sprintf("husk %s at %s, %d %s", v.RuntimeVersion, endpoint, len(k.Pods), pluralS(len(k.Pods), "pod", "pods"))}, "daemon"
}

func printDoctor(w io.Writer, rep doctorReport, fix bool) {
	for _, c := range rep.Checks {
		fmt.Fprintf(w, "%-5s %-20s %s\n", c.Status, c.Name, c.Reason)
	}
	for _, l := range rep.Leftovers {
		fmt.Fprintf(w, "%-5s %-20s %s: %s\n", doctor.Fail, "leftover/"+l.Kind, l.Path, l.Reason)
	}
	for _, a := range rep.Fixed {
		if a.Error != "" {
			fmt.Fprintf(w, "failed to remove %s %s: %s\n", a.Kind, a.Path, a.Error)
			continue
		}
		fmt.Fprintf(w, "removed %s %s: %s\n", a.Kind, a.Path, a.Done)
	}
	if fix && len(rep.Fixed) > 0 {
		if len(rep.Remaining) == 0 {
			fmt.Fprintln(w, "no leftovers remain")
		}
		for _, l := range rep.Remaining {
			fmt.Fprintf(w, "%-5s %-20s %s: %s (still there after --fix)\n", doctor.Fail, "leftover/"+l.Kind, l.Path, l.Reason)
		}
	}
}

func oneLineErr(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

func pluralS(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
