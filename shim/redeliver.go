package shim

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A signal sent to a container's init while that process is the init of its
// own pid namespace and has no handler for the signal is dropped by the
// kernel, not queued: sig_task_ignored() ignores a SIG_DFL signal to a
// SIGNAL_UNKILLABLE task even when it comes from an ancestor namespace
// (only SIGKILL and SIGSTOP are forced through). kubelet stops containers in
// the first milliseconds of their lives whenever a pod is deleted as it
// comes up; a shell that has not yet reached its `trap ... TERM` line then
// loses the TERM and is SIGKILLed at the end of its grace period (exit 137:
// the node e2e spec "restartable init containers exit with non-zero exit
// code ... should mark pod as succeeded" lost that race on husk). runc and
// containerd send the signal once and accept the loss.
//
// The shim sends it again, once, as soon as the init has a handler for it:
// the stop's intent (let the process end gracefully) is kept, and a process
// that never takes the signal (a plain `sleep` as init) sees no difference.
// Only a signal the kernel must have dropped is repeated: the disposition is
// read before the first send, so a signal that was delivered is not sent
// twice (a handler installed between that read and the send, a window of
// microseconds, could see it twice, which a handler of TERM survives).

// redeliverPoll bounds how often the init's disposition is read: from
// every 5 ms (a shell's first lines take tens of ms) backing off to 100 ms.
const (
	redeliverFirstPoll = 5 * time.Millisecond
	redeliverMaxPoll   = 100 * time.Millisecond
	// redeliverWatch ends the watch of an init that never takes the
	// signal and is never killed (kubelet's longest usual grace periods
	// are minutes; a daemon that died mid-stop sends no SIGKILL).
	redeliverWatch = 10 * time.Minute
)

// disposition is what /proc/<pid>/status says about a process's signals.
type disposition struct {
	nsInit  bool   // pid 1 of its own pid namespace (NSpid's last field)
	caught  uint64 // SigCgt: signals with a handler, bit sig-1
	ignored uint64 // SigIgn
}

// droppable says whether the kernel may throw sig away at all: SIGKILL
// and SIGSTOP are always forced through.
func droppable(sig int) bool {
	return sig >= 1 && sig <= 64 && sig != int(unix.SIGKILL) && sig != int(unix.SIGSTOP)
}

// dropped says whether sig sent now to a process of disposition d is
// thrown away by the kernel.
func (d disposition) dropped(sig int) bool {
	return droppable(sig) && d.nsInit && !d.handles(sig) && !d.ignores(sig)
}

// handles says whether the process has a handler for sig.
func (d disposition) handles(sig int) bool {
	return sig >= 1 && sig <= 64 && d.caught&(uint64(1)<<(sig-1)) != 0
}

func (d disposition) ignores(sig int) bool {
	return sig >= 1 && sig <= 64 && d.ignored&(uint64(1)<<(sig-1)) != 0
}

func readDisposition(pid int) (disposition, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return disposition{}, err
	}
	return parseDisposition(b)
}

// parseDisposition reads the NSpid, SigIgn and SigCgt lines of a
// /proc/<pid>/status.
func parseDisposition(status []byte) (disposition, error) {
	var d disposition
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		var err error
		switch key {
		case "NSpid":
			f := strings.Fields(val)
			d.nsInit = len(f) > 0 && f[len(f)-1] == "1"
			seen++
		case "SigIgn":
			d.ignored, err = strconv.ParseUint(val, 16, 64)
			seen++
		case "SigCgt":
			d.caught, err = strconv.ParseUint(val, 16, 64)
			seen++
		}
		if err != nil {
			return disposition{}, fmt.Errorf("status line %s: %w", key, err)
		}
	}
	if seen != 3 {
		return disposition{}, fmt.Errorf("status without NSpid, SigIgn and SigCgt")
	}
	return d, nil
}

// mayDrop says, before sig is sent to a container's init, whether the
// kernel may throw it away, so that redeliver must watch. The order of the
// two probes matters: execve is one-way, so an init seen past it stays
// past it and the disposition read next is the program's. Read the other
// way round, a disposition taken while the init was still the runtime's
// (whose Go runtime has a TERM handler) followed by an exe read just after
// its execve would count a TERM to a trap-less shell as delivered, and it
// would be lost (TestStopBeforeTrap failed so, once in many CI runs).
func mayDrop(sig int, beforeExec func() bool, read func() (disposition, error)) bool {
	if !droppable(sig) {
		return false
	}
	if beforeExec() {
		return true
	}
	d, err := read()
	return err == nil && d.dropped(sig)
}

// redeliver waits for c's init to take sig and sends it once more; it ends
// when c exits, when a later kill of c supersedes this one (gen), when the
// init ignores sig, or after redeliverWatch.
func (s *Server) redeliver(c *container, pid, sig int, gen uint64) {
	poll := redeliverFirstPoll
	deadline := time.Now().Add(redeliverWatch)
	for time.Now().Before(deadline) {
		select {
		case <-c.exited:
			return
		case <-time.After(poll):
		}
		poll = min(2*poll, redeliverMaxPoll)
		if s.beforeExec(pid) {
			continue
		}
		d, err := readDisposition(pid)
		if err != nil || d.ignores(sig) {
			return // gone (the exit is being reaped) or never to take it
		}
		if !d.handles(sig) {
			continue
		}
		s.mu.Lock()
		if c.status != StatusExited && c.killGen == gen {
			if err := killPid(pid, sig); err == nil {
				s.log.Debug("signal sent again: the init had no handler at the first send", "container", c.id, "signal", sig)
			}
		}
		s.mu.Unlock()
		return
	}
}

// beforeExec says whether pid is still the runtime's init (husk-oci's or
// runc's), not yet the container's program: StartContainer returns once
// the init has passed the exec fifo, before its execve. A signal caught
// there by the runtime's handlers, or pending across the execve, never
// reaches the program's handler either, so the watch starts and waits
// for the program as for a fresh shell.
func (s *Server) beforeExec(pid int) bool {
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return false
	}
	rt, err := filepath.EvalSymlinks(s.cfg.Runtime.Path)
	return err == nil && exe == rt
}
