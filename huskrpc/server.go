// Package huskrpc serves husk's own gRPC API (api/v1, package husk.v1)
// beside the CRI on the daemon's socket: what the husk CLI needs the daemon
// to do and the CRI has no call for. As in the cri package, each RPC lives
// in its own file, named for it, and is a thin translation into the image
// package; RPCs not built yet fall through to the embedded Unimplemented
// server and answer codes.Unimplemented.
package huskrpc

import (
	huskapi "github.com/husk-runtime/husk/api/v1"
	"github.com/husk-runtime/husk/errdefs"
	"github.com/husk-runtime/husk/image"
	"google.golang.org/grpc"
)

// Server implements husk.v1.Images.
type Server struct {
	huskapi.UnimplementedImagesServer

	Images *image.Store
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
// which names what was wrong. The daemon's interceptors log failed calls,
// streams included.
func toStatus(err error) error { return errdefs.ToGRPC(err) }
