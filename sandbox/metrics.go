package sandbox

import "time"

// Recorder is what the manager reports for metrics.
type Recorder interface {
	// PodStarted: a pod's first container started, took after its
	// RunPodSandbox began.
	PodStarted(took time.Duration)
	// Recovered: what recovery at start made of one pod record
	// (RecoveredRunning, RecoveredNotReady, RecoveredRemoved).
	Recovered(outcome string)
}

// What recovery makes of a pod record.
const (
	RecoveredRunning  = "running"  // its shim answered: reattached
	RecoveredNotReady = "notready" // its shim is gone
	RecoveredRemoved  = "removed"  // half-made by a crash
)

type nopRecorder struct{}

func (nopRecorder) PodStarted(time.Duration) {}
func (nopRecorder) Recovered(string)         {}

// Counts is what the manager holds now: pods and containers by the
// state the CRI reports (lower case), and the shims it believes alive.
type Counts struct {
	Pods       map[string]int
	Containers map[string]int
	Shims      int
}

// Counts reads the in-memory records; no file, no shim call, so a scrape
// costs a lock and a walk over the maps.
func (m *Manager) Counts() Counts {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n := Counts{Pods: map[string]int{}, Containers: map[string]int{}}
	for _, p := range m.pods {
		state := p.State
		if state == PodReady && p.infraExit != nil {
			state = PodNotReady // as PodSandboxStatus reports it
		}
		n.Pods[string(state)]++
		if p.ShimPid != 0 && !p.shimStopping && !p.shimDied {
			n.Shims++
		}
	}
	for _, c := range m.ctrs {
		n.Containers[string(c.State)]++
	}
	return n
}
