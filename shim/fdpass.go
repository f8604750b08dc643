package shim

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// File descriptor passing (SCM_RIGHTS) for the streaming methods: the shim
// hands an exec's or an attach's stdio to the daemon, and receives a pty
// master from libcontainer's console socket. runc's utils.RecvFile does the
// latter but is deprecated and goes away in runc 1.6, so husk has its own.

// maxFds bounds how many descriptors one message may carry; the streaming
// methods send at most three (stdin, stdout, stderr).
const maxFds = 4

// sendFds writes data with files attached in one sendmsg(2). The kernel
// attaches the rights to the first byte of data, so data must not be empty.
// The caller keeps its own copies of the files: the receiver gets new
// descriptors for the same open file descriptions.
func sendFds(conn *net.UnixConn, data []byte, files ...*os.File) error {
	if len(data) == 0 {
		return fmt.Errorf("send fds: no data to carry them")
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	n, oobn, err := conn.WriteMsgUnix(data, oob, nil)
	if err != nil {
		return fmt.Errorf("send fds: %w", err)
	}
	if oobn != len(oob) {
		return fmt.Errorf("send fds: wrote %d of %d control bytes", oobn, len(oob))
	}
	if n < len(data) {
		// Only the rights travel with the first write; the rest of the
		// data is ordinary stream data.
		if _, err := conn.Write(data[n:]); err != nil {
			return fmt.Errorf("send fds: rest of message: %w", err)
		}
	}
	return nil
}

// recvLine reads one newline-terminated message and the descriptors that
// came with it. Bytes read past the newline (a stream socket may coalesce the
// next message) are returned as rest for the caller to read first. Received
// descriptors are close-on-exec (MSG_CMSG_CLOEXEC), so no child the daemon
// starts inherits a container's stdio.
func recvLine(conn *net.UnixConn, timeout time.Duration) (line, rest []byte, files []*os.File, err error) {
	if timeout > 0 {
		_ = conn.SetReadDeadline(time.Now().Add(timeout))
		defer conn.SetReadDeadline(time.Time{})
	}
	var data []byte
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(maxFds*4))
	for {
		n, oobn, flags, _, rerr := readMsg(conn, buf, oob)
		if oobn > 0 {
			got, perr := parseRights(oob[:oobn])
			files = append(files, got...)
			if perr != nil {
				closeAll(files)
				return nil, nil, nil, perr
			}
		}
		if flags&unix.MSG_CTRUNC != 0 {
			closeAll(files)
			return nil, nil, nil, fmt.Errorf("receive fds: control message truncated")
		}
		data = append(data, buf[:n]...)
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			return data[:i], data[i+1:], files, nil
		}
		if rerr != nil {
			closeAll(files)
			return nil, nil, nil, fmt.Errorf("receive message: %w", rerr)
		}
		if n == 0 {
			closeAll(files)
			return nil, nil, nil, fmt.Errorf("receive message: connection closed")
		}
	}
}

// readMsg is recvmsg(2) with MSG_CMSG_CLOEXEC through the connection's
// poller, so deadlines apply and no thread blocks in the kernel.
func readMsg(conn *net.UnixConn, buf, oob []byte) (n, oobn, flags int, from unix.Sockaddr, err error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, 0, 0, nil, err
	}
	var opErr error
	err = raw.Read(func(fd uintptr) bool {
		n, oobn, flags, from, opErr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
		// EAGAIN: nothing yet; returning false parks on the poller.
		return opErr != unix.EAGAIN
	})
	if err == nil {
		err = opErr
	}
	return n, oobn, flags, from, err
}

// parseRights turns SCM_RIGHTS control messages into files, set
// non-blocking so the Go poller drives their reads and writes and a Close
// from another goroutine interrupts a blocked Read.
func parseRights(oob []byte) ([]*os.File, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("parse control message: %w", err)
	}
	var files []*os.File
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_RIGHTS {
			continue
		}
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			return files, fmt.Errorf("parse rights: %w", err)
		}
		for _, fd := range fds {
			_ = unix.SetNonblock(fd, true)
			files = append(files, os.NewFile(uintptr(fd), fmt.Sprintf("fd%d", fd)))
		}
	}
	return files, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// consoleSocket is a socket pair for libcontainer's Process.ConsoleSocket:
// the child end goes to husk-oci (and on to runc init, which sends the pty
// master through it); the shim reads the master from the parent end.
func consoleSocket() (parent *net.UnixConn, child *os.File, err error) {
	// SOCK_CLOEXEC: only the husk-oci started for this process may hold
	// the child end; StartProcess clears the flag on the fd it hands down.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("console socket pair: %w", err)
	}
	pf := os.NewFile(uintptr(fds[0]), "console-parent")
	defer pf.Close() // FileConn dups it
	fc, err := net.FileConn(pf)
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("console socket: %w", err)
	}
	return fc.(*net.UnixConn), os.NewFile(uintptr(fds[1]), "console-child"), nil
}

// recvConsole receives the pty master that runc init sent (its message data
// is the pty's name, without a newline, so this reads one message).
func recvConsole(conn *net.UnixConn, timeout time.Duration) (*os.File, error) {
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(maxFds*4))
	_, oobn, flags, _, err := readMsg(conn, buf, oob)
	if err != nil {
		return nil, fmt.Errorf("receive pty master: %w", err)
	}
	if flags&unix.MSG_CTRUNC != 0 {
		return nil, fmt.Errorf("receive pty master: control message truncated")
	}
	files, err := parseRights(oob[:oobn])
	if err != nil {
		closeAll(files)
		return nil, fmt.Errorf("receive pty master: %w", err)
	}
	if len(files) != 1 {
		closeAll(files)
		return nil, fmt.Errorf("receive pty master: got %d descriptors, want 1", len(files))
	}
	return files[0], nil
}
