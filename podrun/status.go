package podrun

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/husk-runtime/husk/atomicfile"
)

// ProbeStatus is what a foreground `husk pod run` knows of its pod that
// the runtime does not: whether each container has started (its startup
// probe passed) and is ready. The supervisor keeps it at
// <state dir>/pods/<uid>/status.json for `husk ps` and `husk pod ls`; a
// detached pod has none (nothing probes it).
type ProbeStatus struct {
	Updated    time.Time                   `json:"updated"`
	Containers map[string]ContainerProbing `json:"containers"` // by container name
}

// ContainerProbing is one container's part of ProbeStatus; ID is the
// attempt it is about.
type ContainerProbing struct {
	ID      string `json:"id"`
	Started bool   `json:"started"`
	Ready   bool   `json:"ready"`
}

func (s *Supervisor) writeStatus(states []*supervised) {
	ps := ProbeStatus{Updated: time.Now(), Containers: map[string]ContainerProbing{}}
	for _, st := range states {
		ps.Containers[st.c.Name] = ContainerProbing{ID: st.id, Started: st.started, Ready: st.ready}
	}
	b, err := json.Marshal(ps)
	if err == nil {
		// Atomic: `husk ps` reads it at any moment.
		err = atomicfile.Write(filepath.Join(s.r.podDir(s.p.Plan.UID), "status.json"), b, 0o644)
	}
	if err != nil {
		fmt.Fprintf(s.r.Stderr, "husk: status of pod %s: %v\n", s.p, err)
	}
}

// Lookup finds the container's part of ps, if ps is about the
// container's current attempt (the one named by id).
func (ps *ProbeStatus) Lookup(name, id string) (ContainerProbing, bool) {
	if ps == nil {
		return ContainerProbing{}, false
	}
	cp, ok := ps.Containers[name]
	return cp, ok && cp.ID == id
}

// ReadProbeStatus reads the ProbeStatus of the pod uid under stateDir;
// nil, nil when there is none.
func ReadProbeStatus(stateDir, uid string) (*ProbeStatus, error) {
	if uid == "" || filepath.Base(uid) != uid {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(stateDir, "pods", uid, "status.json"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ps ProbeStatus
	if err := json.Unmarshal(b, &ps); err != nil {
		return nil, fmt.Errorf("status of pod %s: %w", uid, err)
	}
	return &ps, nil
}
