// Command husk is the husk container runtime: `husk daemon` serves the CRI,
// and the other subcommands help operate it.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/husk-runtime/husk/config"
	"github.com/husk-runtime/husk/daemon"
	"github.com/husk-runtime/husk/logformat"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// version is set at build time (-ldflags -X main.version=...).
var version = "0.1.0-dev"

func main() {
	if err := rootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "husk:", errorLine(err))
		os.Exit(1)
	}
}

// errorLine is err as the CLI prints it: a runtime that cannot be reached
// gets a hint at --endpoint.
func errorLine(err error) string {
	msg := err.Error()
	if status.Code(err) == codes.Unavailable && !strings.Contains(msg, "see --endpoint") {
		msg += " (is the runtime running at " + clientFlags.endpoint + "? see --endpoint)"
	}
	return msg
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "husk",
		Short:         "husk, a Kubernetes container runtime",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(daemonCmd(), configCmd(), versionCmd(), podCmd(), podsCmd(), psCmd(), inspectCmd(), logsCmd(), execCmd(), imageCmd(), pullCmd(), imagesCmd(), rmiCmd(), attachCmd(), portForwardCmd(), statsCmd(), topCmd(), infoCmd(), completionCmd(), doctorCmd(), benchCmd())
	addClientFlags(root.PersistentFlags())
	return root
}

func daemonCmd() *cobra.Command {
	var cfgPath, rootDir, stateDir, socket, logLevel, logFormat string
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Serve the CRI on a unix socket",
		Example: `  husk daemon
  husk daemon --root /tmp/h/root --state /tmp/h/run --socket /tmp/h/husk.sock`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			explicit := cmd.Flags().Changed("config")
			cfg, err := config.Load(cfgPath, explicit)
			if err != nil {
				return err
			}
			if rootDir != "" {
				cfg.Root = rootDir
			}
			if stateDir != "" {
				cfg.State = stateDir
			}
			if socket != "" {
				cfg.Socket = socket
			}
			if logLevel != "" {
				cfg.LogLevel = logLevel
			}
			if logFormat != "" {
				cfg.LogFormat = logFormat
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
				return fmt.Errorf("log_level %q: %w", cfg.LogLevel, err)
			}
			log, err := logformat.New(os.Stderr, lvl, cfg.LogFormat)
			if err != nil {
				return err
			}
			slog.SetDefault(log)
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return daemon.Run(ctx, cfg, version, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", config.DefaultPath, "configuration file (TOML)")
	f.StringVar(&rootDir, "root", "", "persistent state directory (default /var/lib/husk)")
	f.StringVar(&stateDir, "state", "", "runtime state directory (default /run/husk)")
	f.StringVar(&socket, "socket", "", "CRI socket path (default /run/husk/husk.sock)")
	f.StringVar(&logLevel, "log-level", "", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "", "text or json (default text)")
	return cmd
}

func configCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Show husk's configuration", Example: "  husk config default"}
	cmd.AddCommand(&cobra.Command{
		Use:     "default",
		Short:   "Print the embedded default configuration",
		Example: "  husk config default > /etc/husk/config.toml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := os.Stdout.Write(config.DefaultTOML())
			return err
		},
	})
	return cmd
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print husk's version",
		Example: "  husk version",
		Args:    cobra.NoArgs,
		Run:     func(cmd *cobra.Command, _ []string) { fmt.Println("husk", version) },
	}
}
