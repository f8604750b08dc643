package shim

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fifoServer is a shim whose runtime root holds one created container's
// exec fifo, as libcontainer leaves it.
func fifoServer(t *testing.T) (*Server, *container, string) {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "c"), 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "c", execFifo)
	if err := unix.Mkfifo(path, 0o622); err != nil {
		t.Fatal(err)
	}
	c := &container{id: "c", status: StatusCreated, exited: make(chan struct{})}
	s := &Server{cfg: ServerConfig{Runtime: Runtime{Root: root}}, containers: map[string]*container{"c": c}}
	return s, c, path
}

// initWrites stands in for runc init: a blocking write-open of the fifo,
// then one byte (or none), then close. It reports when its open returned.
func initWrites(t *testing.T, path string, data string) <-chan error {
	done := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			done <- err
			return
		}
		_, err = f.WriteString(data)
		f.Close()
		done <- err
	}()
	return done
}

func TestStartFifoReleasesInit(t *testing.T) {
	s, c, path := fifoServer(t)
	written := initWrites(t, path, "0")
	// The init may be slow to reach its open: startFifo must wait.
	if err := s.startFifo(context.Background(), c); err != nil {
		t.Fatalf("startFifo: %v", err)
	}
	select {
	case err := <-written:
		if err != nil {
			t.Fatalf("init side: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("init still blocked on the fifo 5s after start")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("exec fifo still there after start (stat: %v)", err)
	}
}

func TestStartFifoWaitsForLateInit(t *testing.T) {
	s, c, path := fifoServer(t)
	done := make(chan error, 1)
	go func() { done <- s.startFifo(context.Background(), c) }()
	select {
	case err := <-done:
		t.Fatalf("startFifo returned %v before the init wrote", err)
	case <-time.After(250 * time.Millisecond):
	}
	initWrites(t, path, "0")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("startFifo: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("startFifo still waiting 5s after the init wrote")
	}
}

func TestStartFifoErrors(t *testing.T) {
	t.Run("init dead", func(t *testing.T) {
		s, c, _ := fifoServer(t)
		close(c.exited)
		err := s.startFifo(context.Background(), c)
		if err == nil || !strings.Contains(err.Error(), "already dead") {
			t.Fatalf("startFifo with a dead init: %v, want already dead", err)
		}
	})
	t.Run("already started", func(t *testing.T) {
		s, c, path := fifoServer(t)
		os.Remove(path)
		err := s.startFifo(context.Background(), c)
		if err == nil || !strings.Contains(err.Error(), "already running") {
			t.Fatalf("startFifo without a fifo: %v, want already running", err)
		}
	})
	t.Run("closed without the byte", func(t *testing.T) {
		s, c, path := fifoServer(t)
		initWrites(t, path, "")
		err := s.startFifo(context.Background(), c)
		if err == nil || !strings.Contains(err.Error(), "already running") {
			t.Fatalf("startFifo after an empty write: %v, want already running", err)
		}
	})
	t.Run("context ends", func(t *testing.T) {
		s, c, _ := fifoServer(t)
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		err := s.startFifo(ctx, c)
		if err == nil || !strings.Contains(err.Error(), "deadline") {
			t.Fatalf("startFifo past its deadline: %v, want deadline exceeded", err)
		}
	})
}
