package cristats

import (
	"math"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func cpuAt(ts int64, ns uint64) *runtimeapi.CpuUsage {
	return &runtimeapi.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: u64v(ns)}
}

func u64v(v uint64) *runtimeapi.UInt64Value { return &runtimeapi.UInt64Value{Value: v} }

func TestCPUPercent(t *testing.T) {
	const sec = int64(1e9)
	for _, c := range []struct {
		name      string
		prev, cur *runtimeapi.CpuUsage
		want      float64
		ok        bool
	}{
		{"half a core", cpuAt(10*sec, 5e9), cpuAt(12*sec, 6e9), 50, true},
		{"two cores busy", cpuAt(0, 0), cpuAt(sec, 2e9), 200, true},
		{"idle", cpuAt(sec, 7), cpuAt(3*sec, 7), 0, true},
		{"no first sample", nil, cpuAt(sec, 1), 0, false},
		{"same timestamp", cpuAt(sec, 1), cpuAt(sec, 2), 0, false},
		{"counter went back (restart)", cpuAt(sec, 9e9), cpuAt(2*sec, 1e9), 0, false},
		{"no counter", &runtimeapi.CpuUsage{Timestamp: 1}, cpuAt(sec, 1), 0, false},
	} {
		got, ok := cpuPercent(c.prev, c.cur)
		if ok != c.ok || math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: cpuPercent = %v, %v; want %v, %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

func TestMemoryLimit(t *testing.T) {
	if got := memoryLimit(&runtimeapi.MemoryUsage{WorkingSetBytes: u64v(300)}); got != 0 {
		t.Errorf("no available_bytes (no limit): limit %d, want 0", got)
	}
	if got := memoryLimit(&runtimeapi.MemoryUsage{WorkingSetBytes: u64v(300), AvailableBytes: u64v(700)}); got != 1000 {
		t.Errorf("limit %d, want working set + available = 1000", got)
	}
	if got := memoryLimit(nil); got != 0 {
		t.Errorf("no memory stats: limit %d", got)
	}
}

func TestStatsRows(t *testing.T) {
	const sec = int64(1e9)
	prev := Sample{
		"b1": {id: "b1", name: "web", podName: "b", cpu: cpuAt(sec, 1e9)},
		"a1": {id: "a1", name: "db", podName: "a", cpu: cpuAt(sec, 0)},
	}
	cur := Sample{
		"b1": {id: "b1", name: "web", podName: "b", cpu: cpuAt(3*sec, 2e9),
			mem: &runtimeapi.MemoryUsage{WorkingSetBytes: u64v(4 << 20), AvailableBytes: u64v(12 << 20)}},
		"a1": {id: "a1", name: "db", podName: "a", cpu: cpuAt(2*sec, 25e7), mem: &runtimeapi.MemoryUsage{WorkingSetBytes: u64v(1)}},
		// Started between the samples; the runtime gives its own rate.
		"a2": {id: "a2", name: "sidecar", podName: "a", cpu: &runtimeapi.CpuUsage{Timestamp: 2 * sec, UsageCoreNanoSeconds: u64v(1), UsageNanoCores: u64v(3e7)}},
		// Started between the samples, no rate: unknown.
		"a3": {id: "a3", name: "zz", podName: "a", cpu: cpuAt(2*sec, 1)},
	}
	rows := Rows(prev, cur)
	var order []string
	for _, r := range rows {
		order = append(order, r.ID)
	}
	if strings.Join(order, ",") != "a1,a2,a3,b1" {
		t.Fatalf("rows in order %v, want by pod then name: a1,a2,a3,b1", order)
	}
	want := map[string]float64{"a1": 25, "a2": 3, "b1": 50}
	for _, r := range rows {
		w, known := want[r.ID]
		switch {
		case !known && r.CPUPercent != nil:
			t.Errorf("%s: CPU %% %v, want unknown", r.ID, *r.CPUPercent)
		case known && (r.CPUPercent == nil || math.Abs(*r.CPUPercent-w) > 1e-9):
			t.Errorf("%s: CPU %% %v, want %v", r.ID, r.CPUPercent, w)
		}
	}
	if rows[3].MemoryWorkingSetBytes != 4<<20 || rows[3].MemoryLimitBytes != 16<<20 {
		t.Errorf("web memory %d / %d, want 4MiB / 16MiB", rows[3].MemoryWorkingSetBytes, rows[3].MemoryLimitBytes)
	}
}
