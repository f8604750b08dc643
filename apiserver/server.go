// Package apiserver serves husk's own gRPC API (api/v1, package husk.v1)
// beside the CRI on the daemon's socket: what the husk CLI needs the daemon
// to do and the CRI has no call for. As in the cri package, each RPC lives
// in its own file, named for it, and is a thin translation into the image
// package; RPCs not built yet fall through to the embedded Unimplemented
// server and answer codes.Unimplemented.
package apiserver

import (
	"context"
	"errors"
	"log/slog"

	huskapi "github.com/husk-runtime/husk/api/v1"
	"github.com/husk-runtime/husk/image"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
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
// calls for and the core's message, which names what was wrong. The
// daemon's interceptor logs unary calls only, so failed streams are logged
// here.
func (s *Server) toStatus(method string, err error) error {
	code := codeOf(err)
	s.Log.Warn("husk API call failed", "method", method, "code", code.String(), "error", err.Error())
	return status.Error(code, err.Error())
}

func codeOf(err error) codes.Code {
	switch {
	case errors.Is(err, image.ErrNotFound):
		return codes.NotFound
	case errors.Is(err, image.ErrInvalidArchive), errors.Is(err, image.ErrInvalidReference), errors.Is(err, image.ErrAmbiguous):
		return codes.InvalidArgument
	case errors.Is(err, image.ErrNotExportable):
		return codes.FailedPrecondition
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	if st, ok := status.FromError(err); ok {
		return st.Code()
	}
	return codes.Unknown
}
