// Package cristats turns the CRI's cumulative container and pod stats
// into the figures `husk stats` shows: two samples make a row per object,
// with CPU % as the rate between them and the memory limit the CRI
// implies.
package cristats

import (
	"context"
	"sort"

	"github.com/husk-runtime/husk/criclient"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Source lists the stats of the selected containers or pods.
// NewSource makes one; Resolve narrows it to the objects the arguments
// name (args: containers, or pods with pods; pod: that pod's containers).
type Source struct {
	c    *criclient.Client
	pods bool
	ids  map[string]bool // selected by arguments; nil: all
	pod  string          // --pod: only this pod's containers
}

// Resolve turns the arguments into IDs once: the selection stays the same
// objects while the display refreshes.
func (s *Source) Resolve(ctx context.Context, args []string, pod string) error {
	if pod != "" {
		p, err := s.c.FindPod(ctx, pod)
		if err != nil {
			return err
		}
		s.pod = p.Id
	}
	if len(args) == 0 {
		return nil
	}
	s.ids = map[string]bool{}
	for _, a := range args {
		if s.pods {
			p, err := s.c.FindPod(ctx, a)
			if err != nil {
				return err
			}
			s.ids[p.Id] = true
			continue
		}
		ct, err := s.c.FindContainer(ctx, a)
		if err != nil {
			return err
		}
		s.ids[ct.Id] = true
	}
	return nil
}

// Sample is one reading of every selected object, by ID.
type Sample map[string]*entry

// entry is one object's reading, with the names shown beside it.
type entry struct {
	id, name, podID, podName, namespace string
	cpu                                 *runtimeapi.CpuUsage
	mem                                 *runtimeapi.MemoryUsage
	layer                               *runtimeapi.FilesystemUsage
	net                                 *runtimeapi.NetworkUsage
	procs                               *runtimeapi.ProcessUsage
}

// Sample reads the stats of every selected object once.
func (s *Source) Sample(ctx context.Context) (Sample, error) {
	cctx, cancel := s.c.Ctx(ctx)
	defer cancel()
	out := Sample{}
	if s.pods {
		resp, err := s.c.Runtime.ListPodSandboxStats(cctx, &runtimeapi.ListPodSandboxStatsRequest{})
		if err != nil {
			return nil, criclient.Wrap(err, "list pod stats")
		}
		for _, st := range resp.Stats {
			a := st.GetAttributes()
			if s.ids != nil && !s.ids[a.GetId()] {
				continue
			}
			lx := st.GetLinux()
			out[a.GetId()] = &entry{id: a.GetId(), name: a.GetMetadata().GetName(), namespace: a.GetMetadata().GetNamespace(),
				cpu: lx.GetCpu(), mem: lx.GetMemory(), net: lx.GetNetwork(), procs: lx.GetProcess()}
		}
		return out, nil
	}
	filter := &runtimeapi.ContainerStatsFilter{PodSandboxId: s.pod}
	resp, err := s.c.Runtime.ListContainerStats(cctx, &runtimeapi.ListContainerStatsRequest{Filter: filter})
	if err != nil {
		return nil, criclient.Wrap(err, "list container stats")
	}
	// Stats carry no pod: the container and pod lists give it a name.
	cl, err := s.c.Runtime.ListContainers(cctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, criclient.Wrap(err, "list containers")
	}
	pl, err := s.c.Runtime.ListPodSandbox(cctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return nil, criclient.Wrap(err, "list pods")
	}
	podOf := map[string]string{}
	for _, ct := range cl.Containers {
		podOf[ct.Id] = ct.PodSandboxId
	}
	podNames := map[string]string{}
	for _, p := range pl.Items {
		podNames[p.Id] = p.GetMetadata().GetName()
	}
	for _, st := range resp.Stats {
		a := st.GetAttributes()
		if s.ids != nil && !s.ids[a.GetId()] {
			continue
		}
		out[a.GetId()] = &entry{id: a.GetId(), name: a.GetMetadata().GetName(), podID: podOf[a.GetId()],
			podName: podNames[podOf[a.GetId()]], cpu: st.GetCpu(), mem: st.GetMemory(), layer: st.GetWritableLayer()}
	}
	return out, nil
}

// Row is one object's figures: a line of husk stats's table, an object
// of its -o json|yaml.
type Row struct {
	ID                    string   `json:"id"`
	Name                  string   `json:"name"`
	PodID                 string   `json:"podId,omitempty"`
	Pod                   string   `json:"pod,omitempty"`
	Namespace             string   `json:"namespace,omitempty"`
	CPUPercent            *float64 `json:"cpuPercent"` // nil: not known (one sample only)
	MemoryWorkingSetBytes uint64   `json:"memoryWorkingSetBytes"`
	MemoryLimitBytes      uint64   `json:"memoryLimitBytes,omitempty"` // 0: no limit
	WritableLayerBytes    *uint64  `json:"writableLayerBytes,omitempty"`
	NetRxBytes            *uint64  `json:"netRxBytes,omitempty"`
	NetTxBytes            *uint64  `json:"netTxBytes,omitempty"`
	Processes             *uint64  `json:"processes,omitempty"`
}

// cpuPercent is the CPU used between two readings of a cumulative
// counter, in percent of one core. It is unknown (false) when the
// readings do not advance in time or the counter went backwards (the
// container restarted under the same ID, or the runtime reset it).
func cpuPercent(prev, cur *runtimeapi.CpuUsage) (float64, bool) {
	if prev == nil || cur == nil || prev.UsageCoreNanoSeconds == nil || cur.UsageCoreNanoSeconds == nil {
		return 0, false
	}
	dt := cur.Timestamp - prev.Timestamp
	p, c := prev.UsageCoreNanoSeconds.Value, cur.UsageCoreNanoSeconds.Value
	if dt <= 0 || c < p {
		return 0, false
	}
	return float64(c-p) / float64(dt) * 100, true
}

// memoryLimit is the limit CRI implies: available_bytes is "limit minus
// working set" and is only set when there is a limit.
func memoryLimit(m *runtimeapi.MemoryUsage) uint64 {
	if m.GetAvailableBytes() == nil {
		return 0
	}
	return m.GetWorkingSetBytes().GetValue() + m.GetAvailableBytes().GetValue()
}

// Rows pairs two samples into rows, sorted by pod then name. An
// object only in cur (just started) has no CPU % yet unless the runtime
// reports its own rate.
func Rows(prev, cur Sample) []Row {
	rows := make([]Row, 0, len(cur))
	for id, e := range cur {
		r := Row{ID: id, Name: e.name, PodID: e.podID, Pod: e.podName, Namespace: e.namespace,
			MemoryWorkingSetBytes: e.mem.GetWorkingSetBytes().GetValue(), MemoryLimitBytes: memoryLimit(e.mem)}
		var before *runtimeapi.CpuUsage
		if p := prev[id]; p != nil {
			before = p.cpu
		}
		if pct, ok := cpuPercent(before, e.cpu); ok {
			r.CPUPercent = &pct
		} else if nc := e.cpu.GetUsageNanoCores(); nc != nil {
			pct := float64(nc.Value) / 1e7
			r.CPUPercent = &pct
		}
		if e.layer != nil && e.layer.UsedBytes != nil {
			r.WritableLayerBytes = &e.layer.UsedBytes.Value
		}
		if n := e.net.GetDefaultInterface(); n != nil {
			rx, tx := n.GetRxBytes().GetValue(), n.GetTxBytes().GetValue()
			r.NetRxBytes, r.NetTxBytes = &rx, &tx
		}
		if e.procs.GetProcessCount() != nil {
			pc := e.procs.GetProcessCount().GetValue()
			r.Processes = &pc
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Pod != b.Pod {
			return a.Pod < b.Pod
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.ID < b.ID
	})
	return rows
}

// NewSource reads the stats of containers, or of pods, through c.
func NewSource(c *criclient.Client, pods bool) *Source { return &Source{c: c, pods: pods} }
