package daemon

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// logErrors logs every failed CRI call with its code, and every call at
// debug level.
func logErrors(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := h(ctx, req)
		if err != nil {
			st, _ := status.FromError(err)
			log.Warn("CRI call failed", "method", info.FullMethod, "code", st.Code().String(), "error", st.Message(), "took", time.Since(start))
		} else {
			log.Debug("CRI call", "method", info.FullMethod, "took", time.Since(start))
		}
		return resp, err
	}
}
