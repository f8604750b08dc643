package shim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// A libcontainer container in state "created" has an init blocked in
// open(<root>/<id>/exec.fifo, O_WRONLY) (runc v1.5.3,
// standard_init_linux.go): once a reader opens the fifo, the init writes
// one byte, closes it and execs the user process. Starting the container
// is nothing more than being that reader and removing the fifo after,
// which is what libcontainer's Container.Exec does (container_linux.go,
// exec and handleFifoResult) and all `husk-oci start` did. The shim does
// it itself: a whole Go helper exec to open one file cost 13-15 ms of
// every StartContainer on this kind of machine (about 5 ms of Go start-up
// and 324 page faults at ~25 us each under PVM). The runc-compatible
// runtimes (Runtime.CLI) keep their own `start`, whose state files are
// theirs to read.
const execFifo = "exec.fifo"

// fifoPoll is how long one wait for the init's byte lasts before the
// shim checks that the init still lives; libcontainer uses the same
// 100 ms.
const fifoPoll = 100 * time.Millisecond

// startFifo lets container c's init exec the user process and returns
// once it has: the byte it writes just before execve is read.
func (s *Server) startFifo(ctx context.Context, c *container) error {
	path := filepath.Join(s.cfg.Runtime.Root, c.id, execFifo)
	// O_NONBLOCK: a blocking open would wait for the writer, who is
	// already waiting for us; with it the open returns at once and
	// unblocks the init's. A non-blocking read on a fifo that has not
	// had a writer yet returns 0 (EOF) rather than waiting, hence poll:
	// Linux reports no POLLHUP on a fifo no writer has opened, so poll
	// waits for the byte or for the writer's close.
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return errors.New("cannot start an already running container")
	}
	if err != nil {
		return fmt.Errorf("exec fifo: %w", err)
	}
	defer f.Close()
	fd := int(f.Fd())
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(fifoPoll/time.Millisecond))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "poll", Path: path, Err: err}
		}
		if n > 0 {
			break
		}
		select {
		case <-c.exited:
			return errors.New("container process is already dead")
		case <-ctx.Done():
			return fmt.Errorf("wait for init on %s: %w", path, context.Cause(ctx))
		default:
		}
	}
	var b [1]byte
	n, err := unix.Read(fd, b[:])
	for errors.Is(err, unix.EINTR) {
		n, err = unix.Read(fd, b[:])
	}
	if err != nil {
		return &os.PathError{Op: "read", Path: path, Err: err}
	}
	if n == 0 {
		// The writer opened and closed without the byte: the init died
		// on its way, or someone else started it first.
		return errors.New("cannot start an already running container")
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
