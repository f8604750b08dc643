package shim

import (
	"os"
	"os/signal"
	"sync"

	"golang.org/x/sys/unix"
)

// reaper owns every wait in the shim. The shim is a child subreaper: the
// container processes that husk-oci creates are reparented to it when
// husk-oci exits, so it must reap children it never started itself. A
// single wait4(-1) loop does that; everyone who wants one pid's status
// subscribes here instead of calling Wait, which would race the loop.
// (This is safe only because the shim never embeds libcontainer: there, a
// wait4(-1) steals the statuses libcontainer waits for.)
type reaper struct {
	mu      sync.Mutex
	waiters map[int][]chan unix.WaitStatus
	// exited holds statuses no one has asked for yet: a process can exit
	// before its creator has learned its pid.
	exited map[int]unix.WaitStatus
}

func newReaper() *reaper {
	r := &reaper{waiters: map[int][]chan unix.WaitStatus{}, exited: map[int]unix.WaitStatus{}}
	ch := make(chan os.Signal, 64)
	signal.Notify(ch, unix.SIGCHLD)
	go func() {
		for range ch {
			r.reap()
		}
	}()
	// Children that exited before Notify took effect sent a signal we
	// never saw.
	r.reap()
	return r
}

func (r *reaper) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		r.mu.Lock()
		if ws2 := r.waiters[pid]; len(ws2) > 0 {
			delete(r.waiters, pid)
			for _, c := range ws2 {
				c <- ws
			}
		} else {
			r.exited[pid] = ws
		}
		r.mu.Unlock()
	}
}

// wait returns a channel that receives pid's status once.
func (r *reaper) wait(pid int) <-chan unix.WaitStatus {
	c := make(chan unix.WaitStatus, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if ws, ok := r.exited[pid]; ok {
		delete(r.exited, pid)
		c <- ws
		return c
	}
	r.waiters[pid] = append(r.waiters[pid], c)
	return c
}

// exitCode maps a wait status the way shells and kubelet expect: a signal
// n becomes 128+n.
func exitCode(ws unix.WaitStatus) (code, sig int) {
	if ws.Signaled() {
		return 128 + int(ws.Signal()), int(ws.Signal())
	}
	return ws.ExitStatus(), 0
}
