// Package cri serves the CRI v1 gRPC API. Each RPC lives in its own file,
// named for it (sandbox_run.go is RunPodSandbox), and is a thin translation
// into the sandbox and image packages; the comments cite the part of the
// CRI contract each honours. RPCs not built yet fall through to the
// embedded Unimplemented servers, so they answer codes.Unimplemented rather
// than a made-up result.
package cri

import (
	"fmt"
	"log/slog"

	"github.com/husk-runtime/husk/image"
	"github.com/husk-runtime/husk/network"
	"github.com/husk-runtime/husk/sandbox"
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	streaming "k8s.io/cri-streaming/pkg/streaming"
)

// RuntimeName and APIVersion are what Version reports.
const (
	RuntimeName = "husk"
	APIVersion  = "v1"
)

// Server implements RuntimeService and ImageService.
type Server struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer

	RuntimeVersion string
	CgroupDriver   runtimeapi.CgroupDriver
	Sandboxes      *sandbox.Manager
	Images         *image.Store
	Network        *network.Manager
	Log            *slog.Logger
	// Config is the daemon's configuration, shown in Status verbose info.
	Config any
	// Cgroups is the host's cgroup layout, shown in Status verbose info.
	Cgroups fmt.Stringer

	// Streaming hands out the URLs of Exec, Attach and PortForward.
	Streaming streaming.Server

	lists encodedLists // the relist answers, encoded once per change
}

// Register adds both services to s.
func (s *Server) Register(g *grpc.Server) {
	runtimeapi.RegisterRuntimeServiceServer(g, s)
	runtimeapi.RegisterImageServiceServer(g, s)
}
