// Package apiserver serves husk's own gRPC API (api/v1, package husk.v1)
// beside the CRI on the daemon's socket: what the husk CLI needs the daemon
// to do and the CRI has no call for. As in the cri package, each RPC lives
// in its own file, named for it, and is a thin translation into the image
// package; RPCs not built yet fall through to the embedded Unimplemented
// server and answer codes.Unimplemented.
package apiserver

import (
	"log/slog"

	huskapi "github.com/husk-runtime/husk/api/v1"
	"github.com/husk-runtime/husk/errdefs"
	"github.com/husk-runtime/husk/image"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Server implements husk.v1.Images.
type Server struct {
	huskapi.UnimplementedImagesServer

	Images *image.Store
	Log    *slog.Logger
}

// Register adds the service to g.
func (s *Server) Register(g *grpc.Server) {
	huskapi.RegisterImagesServer(g, s)
}

// chunkSize bounds the archive bytes of one message, well under gRPC's
// default 4 MiB message limit.
const chunkSize = 1 << 20

// toStatus turns a core error into a gRPC status with the code its class
// calls for (errdefs' one table, as for the CRI) and the core's message,
// which names what was wrong. The daemon's interceptor logs unary calls
// only, so failed streams are logged here.
func (s *Server) toStatus(method string, err error) error {
	st := errdefs.ToGRPC(err)
	s.Log.Warn("husk API call failed", "method", method, "code", status.Code(st).String(), "error", err.Error())
	return st
}
