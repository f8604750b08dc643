package shim

import (
	"encoding/json"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// A warm helper is a husk-oci started before its call is known
// (`husk-oci serve`, cmd/oci/serve.go): it has gone through the Go
// runtime's start and the package inits of libcontainer, libseccomp and
// the rest, ~15 ms here (page faults at ~25 us each under PVM), and waits
// on a socket for one call: the argv husk-oci would have been run with and
// its descriptors (SCM_RIGHTS, in the order of ociFds). It then runs the
// call exactly as a fresh husk-oci, and the shim reads its result and
// collects its exit the same way.
//
// A pod's first two calls are on the critical path of every pod start and
// come within milliseconds of each other: the infra's run (RunPodSandbox)
// and its first container's create (CreateContainer). So the shim warms one
// helper as it starts, for the run, and one after the run, for the create;
// none after that, so a pod costs no more helpers than it uses in the
// usual case and none idles for long: a warm helper not called within
// warmIdle exits by itself (as it does if the shim goes away).
const warmIdle = "3s"

// warmHelper is one waiting husk-oci: its pid, the shim's end of its call
// socket, and its exit as the reaper reports it (status, once done is
// closed: both the idle watch and the call that used it wait for it).
type warmHelper struct {
	pid    int
	call   *os.File
	done   chan struct{}
	status unix.WaitStatus
}

// wait blocks until h exits and returns its status.
func (h *warmHelper) wait() unix.WaitStatus {
	<-h.done
	return h.status
}

// warm starts a helper into the spare slot unless one is there. Errors
// are only logged: a call without a warm helper starts a fresh one.
func (s *Server) warm() {
	if s.cfg.Runtime.CLI {
		return
	}
	s.warmMu.Lock()
	defer s.warmMu.Unlock()
	if s.spare != nil {
		return
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		s.log.Warn("warm husk-oci: socketpair", "error", err)
		return
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "warm-call"), os.NewFile(uintptr(fds[1]), "warm-call-child")
	defer theirs.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		ours.Close()
		s.log.Warn("warm husk-oci", "error", err)
		return
	}
	defer devnull.Close()
	p, err := os.StartProcess(s.cfg.Runtime.Path, []string{s.cfg.Runtime.Path, "serve", "--idle", warmIdle, "--pod", s.cfg.PodID}, &os.ProcAttr{
		Files: []*os.File{devnull, devnull, devnull, theirs},
		Env:   ociEnv,
	})
	if err != nil {
		ours.Close()
		s.log.Warn("warm husk-oci", "error", err)
		return
	}
	h := &warmHelper{pid: p.Pid, call: ours, done: make(chan struct{})}
	exited := s.reaper.wait(p.Pid)
	_ = p.Release()
	s.spare = h
	go func() {
		h.status = <-exited
		close(h.done)
		// An idle helper that exits (its time up, or killed) leaves the
		// slot; one that was called is the caller's.
		s.warmMu.Lock()
		if s.spare == h {
			s.spare = nil
			h.call.Close()
		}
		s.warmMu.Unlock()
	}()
}

// takeWarm hands out the spare helper, if any, and empties the slot.
func (s *Server) takeWarm() *warmHelper {
	s.warmMu.Lock()
	defer s.warmMu.Unlock()
	h := s.spare
	s.spare = nil
	return h
}

// callWarm gives call argv and its descriptors to helper h. On success h
// runs it and exits; on failure h was not given the call (it died idle,
// say) and the caller starts a fresh husk-oci.
func (h *warmHelper) callWarm(argv []string, files []*os.File) error {
	defer h.call.Close()
	msg, err := json.Marshal(argv)
	if err != nil {
		return err
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	if err := unix.Sendmsg(int(h.call.Fd()), msg, unix.UnixRights(fds...), nil, unix.MSG_NOSIGNAL); err != nil {
		return fmt.Errorf("call warm husk-oci %d: %w", h.pid, err)
	}
	return nil
}
