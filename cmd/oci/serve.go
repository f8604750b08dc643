package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// serve is `husk-oci serve --idle D --pod ID`, a warm helper (shim/warm.go): it
// waits on fd 3, a SOCK_SEQPACKET socket, for one call, which is the argv
// husk-oci would have been run with plus its descriptors in fd order (0,
// 1, 2, 3, 4 and, with --console, 5), and returns that argv once the
// descriptors are in place, for main to run as a fresh husk-oci would. It
// returns nil if no call came within D or the shim went away: the helper
// then exits quietly.
func serve(args []string) ([]string, error) {
	fs := flag.NewFlagSet("husk-oci serve", flag.ContinueOnError)
	idle := fs.Duration("idle", 3*time.Second, "exit if no call comes within this")
	// Only so that ps shows which pod a waiting helper is for.
	_ = fs.String("pod", "", "the pod whose shim started this helper")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	const sock = 3
	fds := []unix.PollFd{{Fd: sock, Events: unix.POLLIN}}
	deadline := time.Now().Add(*idle)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil
		}
		n, err := unix.Poll(fds, int(left/time.Millisecond)+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, os.NewSyscallError("poll call socket", err)
		}
		if n > 0 {
			break
		}
	}
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(8*4))
	n, oobn, _, _, err := unix.Recvmsg(sock, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("recvmsg call socket", err)
	}
	if n == 0 {
		return nil, nil // the shim closed its end: no call will come
	}
	var got []int
	cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("call's control message: %w", err)
	}
	for _, c := range cmsgs {
		fds, err := unix.ParseUnixRights(&c)
		if err != nil {
			return nil, fmt.Errorf("call's descriptors: %w", err)
		}
		got = append(got, fds...)
	}
	var argv []string
	if err := json.Unmarshal(buf[:n], &argv); err != nil || len(argv) == 0 {
		return nil, fmt.Errorf("call %q: not an argv (%v)", buf[:n], err)
	}
	// Out of the way of the targets first: a received descriptor may
	// already have the number another one must take.
	high := make([]int, len(got))
	for i, fd := range got {
		if high[i], err = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 10); err != nil {
			return nil, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
		}
		unix.Close(fd)
	}
	unix.Close(sock)
	for i, fd := range high {
		// Without O_CLOEXEC, as a fresh husk-oci has its descriptors.
		if err := unix.Dup3(fd, i, 0); err != nil {
			return nil, os.NewSyscallError("dup3", err)
		}
		unix.Close(fd)
	}
	return argv, nil
}
