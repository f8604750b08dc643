package daemon

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A failed stream is logged with its method and code; a stream the client
// cancelled, the normal end of a watch, only at debug level.
func TestLogStreamErrors(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ic := logStreamErrors(log)
	info := &grpc.StreamServerInfo{FullMethod: "/runtime.v1.RuntimeService/GetContainerEvents"}
	for _, c := range []struct {
		err    error
		logged bool
	}{
		{status.Error(codes.ResourceExhausted, "subscriber fell behind"), true},
		{status.Error(codes.Canceled, "context canceled"), false},
		{nil, false},
	} {
		buf.Reset()
		got := ic(nil, nil, info, func(any, grpc.ServerStream) error { return c.err })
		if got != c.err { //nolint:errorlint // the very error, not one wrapping it
			t.Errorf("%v: the interceptor returned %v", c.err, got)
		}
		out := buf.String()
		if logged := strings.Contains(out, "gRPC stream failed"); logged != c.logged {
			t.Errorf("%v: logged %v, want %v (%q)", c.err, logged, c.logged, out)
		}
		if c.logged && (!strings.Contains(out, info.FullMethod) || !strings.Contains(out, "code=ResourceExhausted")) {
			t.Errorf("%v: log %q lacks the method or the code", c.err, out)
		}
	}
}
