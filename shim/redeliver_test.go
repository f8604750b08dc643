package shim

import (
	"testing"

	"golang.org/x/sys/unix"
)

// A status as a 6.x kernel writes it for a shell that is pid 1 of its
// namespace (host pid 4242) and has a handler for SIGINT and SIGCHLD only.
const shellStatus = `Name:	sh
Umask:	0022
State:	S (sleeping)
Tgid:	4242
NSpid:	4242	1
PPid:	4200
SigQ:	0/95733
SigPnd:	0000000000000000
ShdPnd:	0000000000000000
SigBlk:	0000000000000000
SigIgn:	0000000000000004
SigCgt:	0000000000010002
CapInh:	0000000000000000
`

func TestDisposition(t *testing.T) {
	d, err := parseDisposition([]byte(shellStatus))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		sig     int
		dropped bool
	}{
		{int(unix.SIGTERM), true},  // no handler: the kernel drops it for a namespace's init
		{int(unix.SIGINT), false},  // handled
		{int(unix.SIGQUIT), false}, // ignored: sending again changes nothing
		{int(unix.SIGKILL), false}, // always forced through
		{int(unix.SIGSTOP), false},
		{0, false},
		{65, false},
	}
	for _, c := range cases {
		if got := d.dropped(c.sig); got != c.dropped {
			t.Errorf("signal %d: dropped %v, want %v", c.sig, got, c.dropped)
		}
	}
	if !d.handles(int(unix.SIGCHLD)) || d.handles(int(unix.SIGTERM)) || !d.ignores(int(unix.SIGQUIT)) {
		t.Errorf("disposition %+v: handles SIGCHLD %v, SIGTERM %v; ignores SIGQUIT %v", d, d.handles(int(unix.SIGCHLD)), d.handles(int(unix.SIGTERM)), d.ignores(int(unix.SIGQUIT)))
	}

	// The same process seen from the host's pid namespace only (a
	// container sharing the host's): not an init, so nothing is dropped.
	host, err := parseDisposition([]byte("NSpid:\t4242\nSigIgn:\t0\nSigCgt:\t0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if host.dropped(int(unix.SIGTERM)) {
		t.Error("a process outside its own pid namespace: SIGTERM counted as dropped")
	}
	if _, err := parseDisposition([]byte("NSpid:\t1\nSigIgn:\tzz\nSigCgt:\t0\n")); err == nil {
		t.Error("garbled SigIgn accepted")
	}
	if _, err := parseDisposition([]byte("Name:\tsh\n")); err == nil {
		t.Error("status without signal lines accepted")
	}
}
