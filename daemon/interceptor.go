package daemon

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// logErrors logs every failed unary call (the CRI's and husk's API's) with
// its code, and every call at debug level.
func logErrors(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := h(ctx, req)
		if err != nil {
			st, _ := status.FromError(err)
			log.Warn("gRPC call failed", "method", info.FullMethod, "code", st.Code().String(), "error", st.Message(), "took", time.Since(start))
		} else {
			log.Debug("CRI call", "method", info.FullMethod, "took", time.Since(start))
		}
		return resp, err
	}
}

// logStreamErrors is logErrors for streaming calls (GetContainerEvents,
// the CRI's Stream* lists, husk's pull progress, import and export): their
// failures reached the client only. A stream the client ended (Canceled)
// is how a watch normally ends, so it is logged at debug level.
func logStreamErrors(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		start := time.Now()
		err := h(srv, ss)
		st, _ := status.FromError(err)
		switch {
		case err == nil:
			log.Debug("gRPC stream", "method", info.FullMethod, "took", time.Since(start))
		case st.Code() == codes.Canceled:
			log.Debug("gRPC stream ended by the client", "method", info.FullMethod, "took", time.Since(start))
		default:
			log.Warn("gRPC stream failed", "method", info.FullMethod, "code", st.Code().String(), "error", st.Message(), "took", time.Since(start))
		}
		return err
	}
}
