package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// lockDirs makes this daemon the only one on its root and state dirs, before
// it touches anything under them: two daemons on one root would each run
// recovery, garbage collection and exit watchers over the same records (as
// three once did). containerd gets the same from its locked metadata
// database.
//
// The lock is flock(2) on <dir>/husk.lock, which the kernel drops when the
// process dies, so a daemon killed with SIGKILL leaves no stale lock for the
// next start; the file holds the holder's pid for the refusal's message.
// The descriptors are close-on-exec (Go opens every file so): a shim the
// daemon starts never holds the lock. The returned function releases both.
func lockDirs(dirs ...string) (func(), error) {
	var held []*os.File
	release := func() {
		for _, f := range held {
			_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
			f.Close()
		}
	}
	for _, dir := range dirs {
		path := filepath.Join(dir, "husk.lock")
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			release()
			return nil, fmt.Errorf("open lock %s: %w", path, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			b := make([]byte, 32)
			n, _ := f.ReadAt(b, 0)
			f.Close()
			release()
			if errors.Is(err, unix.EWOULDBLOCK) {
				pid, _ := strconv.Atoi(string(bytes.TrimSpace(b[:n])))
				return nil, fmt.Errorf("another husk daemon (pid %d) is running on %s (it holds %s)", pid, dir, path)
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		// Our pid, for a second daemon's message; written after the lock,
		// so a reader that got the lock never sees a half-written pid of
		// a live holder.
		if err := f.Truncate(0); err == nil {
			_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		}
		held = append(held, f)
	}
	return release, nil
}

// socketInUse reports whether something answers on the unix socket at path:
// a daemon on another root serving the same socket. A file nobody listens
// on is a stale socket of a dead daemon, which the caller replaces.
func socketInUse(path string) bool {
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}
