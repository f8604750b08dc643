// Package daemon wires husk's parts together and serves the CRI socket.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/husk-runtime/husk/config"
	"github.com/husk-runtime/husk/cri"
	"github.com/husk-runtime/husk/hostcgroup"
	"github.com/husk-runtime/husk/huskrpc"
	"github.com/husk-runtime/husk/image"
	"github.com/husk-runtime/husk/layout"
	"github.com/husk-runtime/husk/logformat"
	"github.com/husk-runtime/husk/metrics"
	"github.com/husk-runtime/husk/network"
	"github.com/husk-runtime/husk/nri"
	"github.com/husk-runtime/husk/pause"
	"github.com/husk-runtime/husk/sandbox"
	"github.com/husk-runtime/husk/tracing"
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PauseImage names the built-in infra image of this husk build.
func PauseImage(version string) string { return "localhost/husk/pause:" + version }

// Run serves until ctx ends, then stops serving. Pods keep running: the
// shims do not depend on the daemon.
func Run(ctx context.Context, cfg config.Config, version string, log *slog.Logger) error {
	routeLibraryLogs(log)
	for _, d := range []string{cfg.Root, cfg.State, filepath.Dir(cfg.Socket)} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	unlock, err := lockDirs(cfg.Root, cfg.State)
	if err != nil {
		return err
	}
	defer unlock()
	if socketInUse(cfg.Socket) {
		return fmt.Errorf("socket %s is served by another process (a husk daemon on another root?); refusing to take it over", cfg.Socket)
	}
	if cfg.CgroupDriver == config.CgroupSystemd {
		// The driver asks systemd over D-Bus for every container: fail
		// here, not at the first pod.
		if _, err := os.Stat("/run/systemd/system"); err != nil {
			return fmt.Errorf("cgroup_driver = %q, but systemd does not run this node (/run/systemd/system: %w)", config.CgroupSystemd, err)
		}
	}
	shimPath, ociPath, err := helperPaths(cfg)
	if err != nil {
		return err
	}
	stopTracing, err := tracing.Start(ctx, tracingConfig(cfg), version)
	if err != nil {
		return err
	}
	defer func() {
		// What is buffered goes out before the daemon exits, briefly.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopTracing(sctx); err != nil {
			log.Warn("tracing: sending the last spans", "error", err)
		}
	}()
	// Recorded always, served only when metrics.address is set.
	mets := metrics.New()
	images, err := image.Open(ctx, image.Config{Root: cfg.Root, ConfigPath: cfg.Registry.ConfigPath, Insecure: cfg.Registry.Insecure,
		StallTimeout: time.Duration(cfg.Registry.StallTimeoutSeconds) * time.Second, AuthFile: cfg.Registry.AuthFile, Logger: log,
		Recorder: mets})
	if err != nil {
		return fmt.Errorf("open image store under %s: %w", cfg.Root, err)
	}
	// Layers unpacked but not yet known to be on disk are flushed before
	// the daemon exits, so a clean stop leaves nothing for the next start
	// to check (image/flush.go).
	defer func() {
		if err := images.Flush(); err != nil {
			log.Warn("flushing unpacked layers to disk", "error", err)
		}
	}()
	sandboxImage := cfg.SandboxImage
	if sandboxImage == "" {
		sandboxImage = PauseImage(version)
		layer, err := pause.Layer()
		if err != nil {
			return err
		}
		if _, err := images.ImportBuiltin(ctx, sandboxImage, layer, v1.Config{
			Entrypoint: []string{"/pause"}, User: "65535:65535", Env: []string{"PATH=/"},
		}); err != nil {
			return fmt.Errorf("register built-in pause image %s: %w", sandboxImage, err)
		}
	}
	paths := layout.Layout{Root: cfg.Root, State: cfg.State}
	netMgr, err := network.New(network.Config{
		ConfDir: cfg.CNI.ConfDir, BinDirs: cfg.CNI.BinDirs,
		CacheDir: paths.CNICacheDir(), IPAMDataDir: paths.IPAMDir(),
		NetnsDir: paths.NetnsDir(), DefaultNetwork: cfg.CNI.DefaultNetwork,
		BridgeName: cfg.CNI.Bridge, Subnet: cfg.CNI.Subnet, Logger: log,
	})
	if err != nil {
		return fmt.Errorf("set up networking: %w", err)
	}
	floor, err := oomScoreAdjFloor()
	if err != nil {
		return err
	}
	cgroups, err := hostcgroup.Read()
	if err != nil {
		return err
	}
	log.Info("host cgroups", "layout", cgroups.String())
	var plugins *nri.Runtime
	if !cfg.NRI.Disable {
		if plugins, err = nri.New(nriConfig(cfg), "husk", version, log); err != nil {
			return err
		}
	}
	mgr, err := sandbox.New(ctx, sandbox.Config{
		Root: cfg.Root, State: cfg.State, ShimPath: shimPath, OCIPath: ociPath,
		SandboxImage: sandboxImage, MinOOMScoreAdj: floor, CDISpecDirs: cfg.CDISpecDirs,
		SeccompNativeArchOnly: cfg.SeccompNativeArchOnly, Cgroups: cgroups,
		JSONLog: cfg.LogFormat == logformat.JSON, Recorder: mets, SystemdCgroup: cfg.CgroupDriver == config.CgroupSystemd,
		Handlers: handlers(cfg, ociPath, log), Plugins: sandboxPlugins(plugins),
	}, images, netMgr, log)
	if err != nil {
		return fmt.Errorf("recover pods: %w", err)
	}
	if plugins != nil {
		// After recovery: a plugin connecting is synchronized with the
		// pods and containers recovered.
		switch err := plugins.Start(mgr); {
		case errors.Is(err, nri.ErrSocketInUse):
			log.Error("NRI is off: another runtime serves its socket; set nri.socket_path (or nri.disable)", "error", err)
		case err != nil:
			return err
		default:
			defer plugins.Stop()
			log.Info("NRI on", "socket", cfg.NRI.SocketPath, "plugin_path", cfg.NRI.PluginPath)
		}
	}
	// Collection needs the containers' layers, known only now; running it
	// at start finishes one a crash cut short.
	images.SetInUse(mgr.UsedLayers)
	mets.WatchLive(func() metrics.Live {
		n := mgr.Counts()
		return metrics.Live{Pods: n.Pods, Containers: n.Containers, Shims: n.Shims}
	})
	if err := images.Collect(); err != nil {
		log.Warn("image garbage collection at start", "error", err)
	}
	stream, err := startStreaming(cfg.Streaming.Address, mgr, log)
	if err != nil {
		return err
	}
	defer stream.stop()
	srv := &cri.Server{
		RuntimeVersion: version, CgroupDriver: cgroupDriver(cfg),
		Sandboxes: mgr, Images: images, Network: netMgr, Log: log,
		Streaming: stream, Config: cfg, Cgroups: cgroups,
	}
	gopts := []grpc.ServerOption{grpc.ChainUnaryInterceptor(mets.UnaryInterceptor(), logErrors(log)),
		grpc.ChainStreamInterceptor(mets.StreamInterceptor(), logStreamErrors(log)),
		grpc.ForceServerCodecV2(srv.Codec())}
	if o := tracing.ServerOption(tracingConfig(cfg)); o != nil {
		gopts = append(gopts, o)
	}
	g := grpc.NewServer(gopts...)
	srv.Register(g)
	(&huskrpc.Server{Images: images}).Register(g) // husk's own API (api/v1) on the same socket

	if err := os.Remove(cfg.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket %s: %w", cfg.Socket, err)
	}
	l, err := net.Listen("unix", cfg.Socket)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Socket, err)
	}
	if err := os.Chmod(cfg.Socket, 0o660); err != nil {
		l.Close()
		return fmt.Errorf("chmod %s: %w", cfg.Socket, err)
	}
	if cfg.Metrics.Address != "" {
		ml, err := metrics.Listen(cfg.Metrics.Address)
		if err != nil {
			l.Close()
			return err
		}
		go mets.Serve(ctx, ml, log)
	}
	log.Info("husk serving CRI", "socket", cfg.Socket, "root", cfg.Root, "state", cfg.State,
		"version", version, "sandbox_image", sandboxImage, "oom_score_adj_floor", floor, "streaming", stream.addr)
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down; pods keep running")
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		g.Stop()
	}
	mgr.ReleaseCgroups()
	_ = os.Remove(cfg.Socket)
	return nil
}

// helperPaths finds husk-shim and husk-oci: configured, or beside husk.
func helperPaths(cfg config.Config) (string, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", "", fmt.Errorf("locate husk binary: %w", err)
	}
	dir := filepath.Dir(exe)
	shimPath := firstSet(cfg.ShimPath, filepath.Join(dir, "husk-shim"))
	ociPath := firstSet(cfg.OCIPath, filepath.Join(dir, "husk-oci"))
	for _, p := range []string{shimPath, ociPath} {
		if _, err := os.Stat(p); err != nil {
			return "", "", fmt.Errorf("helper binary %s: %w (build with `make build`)", p, err)
		}
	}
	return shimPath, ociPath, nil
}

func firstSet(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// tracingConfig is the [tracing] table as the tracing package takes it.
func tracingConfig(cfg config.Config) tracing.Config {
	return tracing.Config{Endpoint: cfg.Tracing.Endpoint, Insecure: cfg.Tracing.Insecure,
		SamplingRatio: cfg.Tracing.SamplingRatio}
}

// nriConfig is the [nri] table as package nri takes it.
func nriConfig(cfg config.Config) nri.Config {
	return nri.Config{SocketPath: cfg.NRI.SocketPath, PluginPath: cfg.NRI.PluginPath, PluginConfigPath: cfg.NRI.PluginConfigPath,
		RegistrationTimeout: time.Duration(cfg.NRI.RegistrationTimeoutSeconds) * time.Second,
		RequestTimeout:      time.Duration(cfg.NRI.RequestTimeoutSeconds) * time.Second}
}

// sandboxPlugins keeps a nil *nri.Runtime a nil interface: the manager
// then tells no one.
func sandboxPlugins(r *nri.Runtime) sandbox.Plugins {
	if r == nil {
		return nil
	}
	return r
}

// cgroupDriver is what RuntimeConfig reports: kubelet (1.31+) takes its
// own cgroup driver from it.
func cgroupDriver(cfg config.Config) runtimeapi.CgroupDriver {
	if cfg.CgroupDriver == config.CgroupSystemd {
		return runtimeapi.CgroupDriver_SYSTEMD
	}
	return runtimeapi.CgroupDriver_CGROUPFS
}
