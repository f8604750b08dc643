// Command husk-shim supervises one pod: it is a child subreaper that holds
// its containers' stdio, writes their CRI logs and records their exits. It
// outlives the daemon; husk-oci does the libcontainer work for it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"

	"github.com/husk-runtime/husk/logformat"
	"github.com/husk-runtime/husk/shim"
	"golang.org/x/sys/unix"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "husk-shim:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg shim.ServerConfig
	flag.StringVar(&cfg.PodID, "id", "", "pod id")
	flag.StringVar(&cfg.Socket, "socket", "", "socket to listen on")
	flag.StringVar(&cfg.Runtime.Path, "oci", "", "path of husk-oci, or of an OCI runtime (with --oci-cli)")
	flag.StringVar(&cfg.Runtime.Root, "oci-root", "", "the runtime's state root")
	flag.BoolVar(&cfg.Runtime.CLI, "oci-cli", false, "--oci is an OCI runtime with runc's command line (runc, crun), not husk-oci")
	flag.BoolVar(&cfg.Runtime.SystemdCgroup, "oci-systemd-cgroup", false, "containers' cgroups are systemd scopes (the systemd cgroup driver)")
	debugLog := flag.Bool("debug", false, "log at debug level")
	jsonLog := flag.Bool("log-json", false, "log JSON lines rather than text")
	flag.Parse()
	if cfg.PodID == "" || cfg.Socket == "" || cfg.Runtime.Path == "" || cfg.Runtime.Root == "" {
		return fmt.Errorf("--id, --socket, --oci and --oci-root are required")
	}
	// The shim lives as long as its pod and is paid for once per pod: keep
	// the heap small rather than fast.
	debug.SetGCPercent(20)

	// Become the parent of every container process once husk-oci exits.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", err)
	}
	// The daemon may be stopped with SIGINT/SIGTERM sent to a process group;
	// the shim is in its own session, but ignore them anyway: only the
	// daemon's shutdown request ends a shim.
	signal.Ignore(unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGPIPE)

	level, format := slog.LevelInfo, logformat.Text
	if *debugLog {
		level = slog.LevelDebug
	}
	if *jsonLog {
		format = logformat.JSON
	}
	log, err := logformat.New(os.Stderr, level, format)
	if err != nil {
		return err
	}
	log = log.With("pod", cfg.PodID)
	_ = os.Remove(cfg.Socket)
	l, err := net.Listen("unix", cfg.Socket)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Socket, err)
	}
	if err := os.Chmod(cfg.Socket, 0o600); err != nil {
		return fmt.Errorf("chmod %s: %w", cfg.Socket, err)
	}
	srv := shim.NewServer(cfg, log)
	// Tell the daemon we are listening (fd 3 is its ready pipe).
	ready := os.NewFile(3, "ready")
	if ready != nil {
		_, _ = ready.Write([]byte("ok\n"))
		ready.Close()
	}
	log.Info("shim serving", "socket", cfg.Socket)
	err = srv.Serve(context.Background(), l)
	_ = os.Remove(cfg.Socket)
	log.Info("shim exiting")
	return err
}
