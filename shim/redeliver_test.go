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

// TestMayDropProbeOrder: an init that execs between kill's two probes. It
// is the runtime's (a Go binary with a TERM handler) until the first probe
// has looked, then a shell with no handler. Whichever probe runs first,
// the TERM about to be sent must be watched, as the shell drops it.
func TestMayDropProbeOrder(t *testing.T) {
	term := int(unix.SIGTERM)
	goRuntime := disposition{nsInit: true, caught: ^uint64(0) &^ (1<<(unix.SIGKILL-1) | 1<<(unix.SIGSTOP-1))}
	shell, err := parseDisposition([]byte(shellStatus))
	if err != nil {
		t.Fatal(err)
	}
	execed := false
	probe := func() { execed = true } // the exec lands right after the first look
	before := func() bool { was := !execed; probe(); return was }
	read := func() (disposition, error) {
		d := shell
		if !execed {
			d = goRuntime
		}
		probe()
		return d, nil
	}
	if !mayDrop(term, before, read) {
		t.Error("an init that execed into a trap-less shell during the probes: TERM not watched")
	}

	// Settled states: a shell past its exec with no handler is watched, one
	// with a handler is not, nothing is watched for SIGKILL.
	past := func() bool { return false }
	if !mayDrop(term, past, func() (disposition, error) { return shell, nil }) {
		t.Error("trap-less shell: TERM not watched")
	}
	if mayDrop(int(unix.SIGINT), past, func() (disposition, error) { return shell, nil }) {
		t.Error("shell with an INT handler: INT watched")
	}
	if mayDrop(int(unix.SIGKILL), func() bool { return true }, func() (disposition, error) { return shell, nil }) {
		t.Error("SIGKILL watched")
	}
}
