package sandbox

import (
	"bytes"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// watchShim notices a pod's shim dying. Nothing can collect its
// containers' exits any more, so they are reported exited (the reason
// names the shim's death) and the pod NOTREADY, so kubelet recreates it;
// removal then destroys what the shim left through husk-oci directly.
//
// The daemon may not be the shim's parent (after a restart it never is),
// so it waits on a pidfd, which any process may poll for exit.
func (m *Manager) watchShim(p *Pod) {
	pid := p.ShimPid
	if pid <= 0 {
		return
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		m.log.Warn("cannot watch shim", "pod", p.ID, "pid", pid, "error", err)
		return
	}
	// The pid was read from a record: make sure it is still this pod's shim
	// (the pidfd pins the process, so the check cannot race a reuse).
	if !isShimOf(pid, p.ID) {
		unix.Close(fd)
		m.shimGone(p)
		return
	}
	go func() {
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			_, err := unix.Poll(fds, -1)
			if err == unix.EINTR {
				continue
			}
			break
		}
		m.shimGone(p)
	}()
}

// isShimOf reports whether pid runs husk-shim for pod id.
func isShimOf(pid int, id string) bool {
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(cmd, []byte("\x00"+id+"\x00"))
}

// shimGone records a shim's death, unless husk itself stopped it.
func (m *Manager) shimGone(p *Pod) {
	m.mu.RLock()
	expected := p.shimStopping
	_, known := m.pods[p.ID]
	m.mu.RUnlock()
	if expected || !known {
		return
	}
	m.log.Error("shim of pod died; its containers are reported exited and the pod NOTREADY", "pod", p.ID, "pid", p.ShimPid)
	// The pod first: whoever sees a container reported dead must also see
	// its pod NOTREADY.
	err := m.updatePod(p, func() {
		p.shimDied = true
		if p.State == PodReady {
			p.State = PodNotReady
		}
	})
	if err != nil {
		m.log.Error("record shim death", "pod", p.ID, "error", err)
	}
	for _, c := range m.podContainers(p.ID) {
		m.refreshContainer(c)
		if st := m.containerState(c); st == ContainerRunning || st == ContainerCreated {
			m.markShimDead(c)
		}
	}
	m.emitPod(p, evStopped)
}
