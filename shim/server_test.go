package shim

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"testing"
	"time"
)

// A wait whose client went away must end, or every daemon restart would
// leave its waits parked in the shim.
func TestWaitEndsWhenClientGoes(t *testing.T) {
	s := &Server{cfg: ServerConfig{PodID: "p"}, log: slog.New(slog.DiscardHandler),
		containers: map[string]*container{"c": {id: "c", status: StatusRunning, exited: make(chan struct{})}}, done: make(chan struct{})}
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() { s.handleConn(context.Background(), server); close(done) }()
	if err := json.NewEncoder(client).Encode(Request{Version: Version, Method: MethodWait, ID: "c"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		t.Fatal("wait returned while the container runs")
	case <-time.After(100 * time.Millisecond):
	}
	client.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("wait still parked 5s after its client went away")
	}
}
