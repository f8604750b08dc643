package sandbox

import (
	"sync"

	"golang.org/x/sys/unix"
)

// x32Supported probes once whether the kernel runs x32 syscalls: getpid
// with the x32 bit set (__X32_SYSCALL_BIT, 0x40000000) answers ENOSYS on a
// kernel without the x32 ABI. A seccomp filter on the daemon that refuses
// x32 (husk run in a container) gives the same answer, and rightly: the
// daemon's filter is inherited by every container it starts.
var x32Supported = sync.OnceValue(func() bool {
	_, _, errno := unix.RawSyscall(0x40000000|unix.SYS_GETPID, 0, 0, 0)
	return errno != unix.ENOSYS
})
