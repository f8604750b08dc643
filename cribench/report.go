package cribench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Units of the metrics.
const (
	UnitMs      = "ms"
	UnitMiB     = "MiB"
	UnitKiB     = "KiB"
	UnitPodsSec = "pods/s"
	UnitS       = "s"
)

// Row is one metric measured on one endpoint.
type Row struct {
	Metric   string `json:"metric"`
	Unit     string `json:"unit"`
	Endpoint string `json:"endpoint"`
	Summary
	// Ratio is P50 divided by the first endpoint's P50 for the same
	// metric (1 on the first endpoint; 0 when there is nothing to divide by).
	Ratio float64 `json:"ratio"`
	// Note says what was measured where it is not obvious (e.g. which
	// processes were counted as the monitor).
	Note string `json:"note,omitempty"`
}

// EndpointInfo describes one endpoint as its runtime reported itself.
type EndpointInfo struct {
	Name           string `json:"name"`
	Address        string `json:"address"`
	RuntimeName    string `json:"runtimeName"`
	RuntimeVersion string `json:"runtimeVersion"`
	ImageRef       string `json:"imageRef,omitempty"`
	DaemonPid      int    `json:"daemonPid,omitempty"`
}

// Report is the outcome of one run.
type Report struct {
	Config    Config         `json:"config"`
	Endpoints []EndpointInfo `json:"endpoints"`
	Rows      []Row          `json:"rows"`
	Warnings  []string       `json:"warnings,omitempty"`
}

// add appends a row, computing its ratio to the first endpoint's row of the
// same metric (rows of one metric are added first endpoint first).
func (r *Report) add(metric, unit, endpoint string, s Summary, note string) {
	row := Row{Metric: metric, Unit: unit, Endpoint: endpoint, Summary: s, Note: note}
	first := -1
	for i, o := range r.Rows {
		if o.Metric == metric {
			first = i
			break
		}
	}
	switch {
	case s.N == 0:
	case first < 0:
		row.Ratio = 1
	case r.Rows[first].N > 0 && r.Rows[first].P50 != 0:
		row.Ratio = s.P50 / r.Rows[first].P50
	}
	r.Rows = append(r.Rows, row)
}

func format(v float64, unit string) string {
	switch unit {
	case UnitMiB:
		return fmt.Sprintf("%.2f", v)
	case UnitKiB:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

// WriteTable writes the report as a table: one line per metric and
// endpoint, the metric named on its first line only, numbers right-aligned,
// and the ratio of each endpoint's p50 to the first endpoint's.
func (r *Report) WriteTable(w io.Writer) error {
	lines := [][]string{{"METRIC", "ENDPOINT", "N", "P50", "P90", "P99", "RATIO"}}
	last := ""
	for _, row := range r.Rows {
		metric := row.Metric + " (" + row.Unit + ")"
		if metric == last {
			metric = ""
		} else {
			last = metric
		}
		if row.N == 0 {
			lines = append(lines, []string{metric, row.Endpoint, "0", "-", "-", "-", "-"})
			continue
		}
		ratio := "-"
		if row.Ratio != 0 {
			ratio = fmt.Sprintf("%.2fx", row.Ratio)
		}
		lines = append(lines, []string{metric, row.Endpoint, fmt.Sprint(row.N),
			format(row.P50, row.Unit), format(row.P90, row.Unit), format(row.P99, row.Unit), ratio})
	}
	width := make([]int, len(lines[0]))
	for _, l := range lines {
		for i, c := range l {
			width[i] = max(width[i], len(c))
		}
	}
	var b strings.Builder
	for _, l := range lines {
		for i, c := range l {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", width[i]-len(c))
			switch {
			case i < 2 && i == len(l)-1:
				b.WriteString(c)
			case i < 2:
				b.WriteString(c + pad) // names left-aligned
			default:
				b.WriteString(pad + c) // numbers right-aligned
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// Header is the one-line description of the run printed above the table.
func (r *Report) Header() string {
	c := r.Config
	var eps []string
	for _, e := range r.Endpoints {
		eps = append(eps, fmt.Sprintf("%s=%s (%s %s)", e.Name, e.Address, e.RuntimeName, e.RuntimeVersion))
	}
	return fmt.Sprintf("husk bench: %d pods sequential, %d at concurrency %d, lists with %d containers (%d calls, %d of ListContainerStats, %s apart); image %s\nendpoints: %s",
		c.Pods, c.ConcurrentPods, c.Concurrency, c.ListContainers, c.ListCalls, c.StatsCalls, c.CallGap, c.Image, strings.Join(eps, ", "))
}
