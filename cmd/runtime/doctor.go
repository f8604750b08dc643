package main

import (
	"fmt"
	"io"
	"os"

	"github.com/husk-runtime/husk/config"
	"github.com/husk-runtime/husk/doctor"
	"github.com/spf13/cobra"
)

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
			rep, err := doctor.Run(cmd.Context(), doctorConfig(cfg), doctor.RunOptions{ConfigPath: cfgPath, Endpoint: endpoint, Socket: cfg.Socket, Fix: fix})
			if err != nil {
				return err
			}
			if output == outJSON {
				if err := printStructured(os.Stdout, outJSON, rep); err != nil {
					return err
				}
			} else {
				printDoctor(os.Stdout, rep, fix)
			}
			return rep.Err()
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

func printDoctor(w io.Writer, rep *doctor.Report, fix bool) {
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
