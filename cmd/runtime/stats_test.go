package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/husk-runtime/husk/cristats"
)

func TestRenderStatsContainers(t *testing.T) {
	pct, layer := 12.345, uint64(8192)
	rows := []cristats.Row{
		{ID: "0123456789abcdef0123", Name: "web", Pod: "web-pod", CPUPercent: &pct,
			MemoryWorkingSetBytes: 3 << 20, MemoryLimitBytes: 12 << 20, WritableLayerBytes: &layer},
		{ID: "fedcba", Name: "new", PodID: "99887766554433221100", MemoryWorkingSetBytes: 512},
	}
	var b bytes.Buffer
	if err := renderStats(&b, rows, false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and 2 rows, got %q", b.String())
	}
	for i, want := range [][]string{
		{"CONTAINER", "NAME", "POD", "CPU", "%", "MEM", "LIMIT", "MEM", "%", "LAYER"},
		{"0123456789abc", "web", "web-pod", "12.35%", "3.00MiB", "12.0MiB", "25.00%", "8.00KiB"},
		// No pod name: its short ID; unknown CPU and no limit as dashes.
		{"fedcba", "new", "9988776655443", "--", "512B", "-", "-", "-"},
	} {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("line %d: %q, want fields %q", i, lines[i], want)
		}
	}
	// Columns line up: every field of a row starts where its header does.
	if strings.Index(lines[0], "CPU %") != strings.Index(lines[1], "12.35%") || strings.Index(lines[1], "12.35%") != strings.Index(lines[2], "--") {
		t.Errorf("CPU column not aligned:\n%s", b.String())
	}
}

func TestRenderStatsPods(t *testing.T) {
	rx, tx, procs := uint64(1536), uint64(2<<30), uint64(3)
	rows := []cristats.Row{{ID: "abc", Name: "web", Namespace: "default", MemoryWorkingSetBytes: 100 << 10,
		NetRxBytes: &rx, NetTxBytes: &tx, Processes: &procs}}
	var b bytes.Buffer
	if err := renderStats(&b, rows, true); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "POD ID") {
		t.Fatalf("pod table %q", b.String())
	}
	want := "abc web default -- 100KiB - - 1.50KiB / 2.00GiB 3"
	if got := strings.Join(strings.Fields(lines[1]), " "); got != want {
		t.Errorf("pod row %q, want %q", got, want)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[uint64]string{
		0: "0B", 1023: "1023B", 1024: "1.00KiB", 1536: "1.50KiB", 10 << 20: "10.0MiB",
		123 << 20: "123MiB", 5 << 30: "5.00GiB",
	} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
