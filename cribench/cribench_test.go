package cribench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	// 1..100 shuffled: nearest rank gives the sample at rank ceil(p*n).
	var s []float64
	for i := 100; i >= 1; i-- {
		s = append(s, float64(i))
	}
	got := Summarize(s)
	want := Summary{N: 100, Min: 1, P50: 50, P90: 90, P99: 99, Max: 100, Mean: 50.5}
	if got != want {
		t.Errorf("Summarize(1..100) = %+v, want %+v", got, want)
	}
	if s[0] != 100 {
		t.Error("Summarize sorted its argument in place")
	}
	// Few samples: p99 of 20 is the largest, p50 of 20 the 10th.
	var twenty []float64
	for i := 1; i <= 20; i++ {
		twenty = append(twenty, float64(i*10))
	}
	if g := Summarize(twenty); g.P50 != 100 || g.P90 != 180 || g.P99 != 200 {
		t.Errorf("Summarize(10..200) p50/p90/p99 = %v/%v/%v, want 100/180/200", g.P50, g.P90, g.P99)
	}
	if g := Summarize([]float64{7}); g.P50 != 7 || g.P99 != 7 || g.N != 1 {
		t.Errorf("Summarize(7) = %+v", g)
	}
	if g := Summarize(nil); g != (Summary{}) {
		t.Errorf("Summarize(nil) = %+v, want zero", g)
	}
}

func testReport() *Report {
	r := &Report{Config: Config{Image: "busybox", Pods: 3, ConcurrentPods: 4, Concurrency: 2, ListContainers: 5, ListCalls: 10}}
	r.add("pod start", UnitMs, "husk", Summarize([]float64{10, 20, 30}), "")
	r.add("pod start", UnitMs, "containerd", Summarize([]float64{40, 50, 60}), "")
	r.add("monitor PSS per pod", UnitMiB, "husk", Summarize([]float64{0.5}), "3 husk-shim processes for 3 pods")
	r.add("monitor PSS per pod", UnitMiB, "containerd", Summarize([]float64{2.25}), "")
	r.add("daemon RSS", UnitMiB, "husk", Summary{}, "")
	r.add("daemon RSS", UnitMiB, "containerd", Summarize([]float64{30}), "")
	return r
}

func TestReportRatios(t *testing.T) {
	r := testReport()
	want := []float64{1, 2.5, 1, 4.5, 0, 0}
	for i, row := range r.Rows {
		if row.Ratio != want[i] {
			t.Errorf("row %d (%s, %s): ratio %v, want %v", i, row.Metric, row.Endpoint, row.Ratio, want[i])
		}
	}
}

func TestReportTable(t *testing.T) {
	var b bytes.Buffer
	if err := testReport().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	want := `METRIC                     ENDPOINT    N    P50    P90    P99  RATIO
pod start (ms)             husk        3   20.0   30.0   30.0  1.00x
                           containerd  3   50.0   60.0   60.0  2.50x
monitor PSS per pod (MiB)  husk        1   0.50   0.50   0.50  1.00x
                           containerd  1   2.25   2.25   2.25  4.50x
daemon RSS (MiB)           husk        0      -      -      -      -
                           containerd  1  30.00  30.00  30.00      -
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestReportJSON(t *testing.T) {
	var b bytes.Buffer
	if err := testReport().WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Config struct {
			Pods int `json:"pods"`
		} `json:"config"`
		Rows []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, b.String())
	}
	if got.Config.Pods != 3 || len(got.Rows) != 6 {
		t.Fatalf("decoded %+v", got)
	}
	r := got.Rows[1]
	if r["metric"] != "pod start" || r["endpoint"] != "containerd" || r["unit"] != "ms" || r["p50"] != 50.0 || r["p99"] != 60.0 || r["ratio"] != 2.5 || r["n"] != 3.0 {
		t.Errorf("row 1 = %v", r)
	}
	if got.Rows[2]["note"] != "3 husk-shim processes for 3 pods" {
		t.Errorf("row 2 note = %v", got.Rows[2]["note"])
	}
}

func TestParseEndpoint(t *testing.T) {
	for _, c := range []struct{ in, name, addr string }{
		{"husk=unix:///run/husk/husk.sock", "husk", "unix:///run/husk/husk.sock"},
		{"unix:///run/containerd/containerd.sock", "", "unix:///run/containerd/containerd.sock"},
		{"/run/husk/husk.sock", "", "unix:///run/husk/husk.sock"},
		{"ctrd=/tmp/a=b/c.sock", "ctrd", "unix:///tmp/a=b/c.sock"},
		{"unix:///tmp/a=b/c.sock", "", "unix:///tmp/a=b/c.sock"},
	} {
		name, addr, err := ParseEndpoint(c.in)
		if err != nil || name != c.name || addr != c.addr {
			t.Errorf("ParseEndpoint(%q) = %q, %q, %v; want %q, %q", c.in, name, addr, err, c.name, c.addr)
		}
	}
	for _, bad := range []string{"", "husk=", "tcp://127.0.0.1:1", "unix://", "x=localhost:1"} {
		if _, _, err := ParseEndpoint(bad); err == nil {
			t.Errorf("ParseEndpoint(%q): no error", bad)
		}
	}
}

func TestProcParsers(t *testing.T) {
	m := parseSmapsRollup([]byte(`55d0c0000000-7ffc8a3fe000 ---p 00000000 00:00 0                          [rollup]
Rss:                1520 kB
Pss:                 412 kB
Pss_Anon:            300 kB
Shared_Clean:       1100 kB
Private_Clean:        20 kB
Private_Dirty:       380 kB
`))
	if m != (Memory{RSS: 1520, PSS: 412, Private: 400}) {
		t.Errorf("parseSmapsRollup = %+v", m)
	}
	ppid, err := parseStatPpid([]byte("4242 (a (weird) name) S 17 4242 4242 0 -1 4194560 96 0 0 0\n"))
	if err != nil || ppid != 17 {
		t.Errorf("parseStatPpid = %d, %v; want 17", ppid, err)
	}
	unix := []byte(`Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000003 00000000 00000000 0001 03 31337 /run/husk/husk.sock
0000000000000000: 00000002 00000000 00010000 0001 01 4242 /run/husk/husk.sock
0000000000000000: 00000002 00000000 00010000 0001 01 777 /run/other.sock
`)
	if got := listeningInode(unix, "/run/husk/husk.sock"); got != "4242" {
		t.Errorf("listeningInode = %q, want the listener's 4242 (not the connection's)", got)
	}
	if got := listeningInode(unix, "/run/none.sock"); got != "" {
		t.Errorf("listeningInode(absent) = %q", got)
	}
}

func TestRotate(t *testing.T) {
	eps := []*Endpoint{{Name: "a"}, {Name: "b"}, {Name: "c"}}
	var got []string
	for i := 0; i < 4; i++ {
		var names []string
		for _, e := range rotate(eps, i) {
			names = append(names, e.Name)
		}
		got = append(got, strings.Join(names, ""))
	}
	if strings.Join(got, " ") != "abc bca cab abc" {
		t.Errorf("rotations: %v", got)
	}
}

// TestGapInterrupted: an interrupted bench does not sit out a call gap
// before it removes what it made.
func TestGapInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := &bench{cfg: Config{CallGap: time.Hour}}
	if err := b.gap(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("gap on a cancelled context: %v, want context.Canceled", err)
	}
	if err := (&bench{}).gap(context.Background()); err != nil {
		t.Fatalf("no gap: %v", err)
	}
}
