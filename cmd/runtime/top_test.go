package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/husk-runtime/husk/podproc"
)

func TestCPUTime(t *testing.T) {
	for s, want := range map[float64]string{0: "0:00.00", 1.5: "0:01.50", 61.25: "1:01.25", 3725: "62:05.00"} {
		if got := cpuTime(s); got != want {
			t.Errorf("cpuTime(%v) = %q, want %q", s, got, want)
		}
	}
}

func TestParsePortMapping(t *testing.T) {
	for in, want := range map[string]portMapping{
		"8080:80": {8080, 80}, ":80": {0, 80}, "0:80": {0, 80}, "5432": {5432, 5432},
	} {
		got, err := parsePortMapping(in)
		if err != nil || got != want {
			t.Errorf("parsePortMapping(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"80:", "x:80", "80:0", "70000", "1:2:3", ""} {
		if _, err := parsePortMapping(bad); err == nil {
			t.Errorf("parsePortMapping(%q): no error", bad)
		}
	}
}

func TestRenderTop(t *testing.T) {
	var b bytes.Buffer
	err := renderTop(&b, []podproc.Process{
		{Container: "(infra)", PID: 10, PPID: 5, User: "nobody", CPUSeconds: 0.02, RSSBytes: 4096, Command: "/pause"},
		{Container: "web", PID: 40, PPID: 20, User: "root", Command: "[zombie]"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"CONTAINER PID PPID USER TIME RSS COMMAND", "(infra) 10 5 nobody 0:00.02 4.00KiB /pause", "web 40 20 root 0:00.00 0B [zombie]"}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	for i := range lines {
		lines[i] = strings.Join(strings.Fields(lines[i]), " ")
	}
	if !slices.Equal(lines, want) {
		t.Errorf("top output %q, want %q", lines, want)
	}
}
