package integration

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestMetrics scrapes the daemon's /metrics around a pod's life and
// checks that each figure moved by what the test did: the calls by
// method and code, the pod start latency, the pull's bytes (exactly the
// image's layers), the live gauges, a collection after RemoveImage, and
// after a restart the recovery of a running pod.
func TestMetrics(t *testing.T) {
	ref := busyboxRef(t)
	registry := strings.SplitN(ref, "/", 2)[0]
	d := StartDaemonWith(t, DaemonOptions{MetricsAddress: "127.0.0.1:0"})
	before := scrapeMetrics(t, d)

	pull(t, d, ref)
	ctx := ctxT(t, time.Minute)
	img, err := d.Img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil || img.Image == nil {
		t.Fatalf("ImageStatus: %v", err)
	}
	pod := podConfig("metrics")
	podID := runPod(t, d, pod)
	runContainer(t, d, podID, pod, ctrConfig("c", ref, "sleep", "3600"))
	if _, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: "nosuchcontainer"}); err == nil {
		t.Fatal("ContainerStatus of an unknown id succeeded")
	}
	during := scrapeMetrics(t, d)

	rt := `service="runtime.v1.RuntimeService"`
	for series, want := range map[string]float64{
		`husk_grpc_requests_total{code="OK",method="RunPodSandbox",` + rt + `}`:         1,
		`husk_grpc_requests_total{code="OK",method="CreateContainer",` + rt + `}`:       1,
		`husk_grpc_requests_total{code="OK",method="StartContainer",` + rt + `}`:        1,
		`husk_grpc_requests_total{code="NotFound",method="ContainerStatus",` + rt + `}`: 1,
		`husk_grpc_request_duration_seconds_count{method="RunPodSandbox",` + rt + `}`:   1,
		`husk_pod_start_duration_seconds_count`:                                         1,
		`husk_image_pulls_total{registry="` + registry + `",result="ok"}`:               1,
		`husk_image_pull_duration_seconds_count{registry="` + registry + `"}`:           1,
		// A fresh root has none of the layers: every compressed byte came.
		`husk_image_pull_bytes_total{registry="` + registry + `"}`: float64(img.Image.Size),
	} {
		if got := during[series] - before[series]; got != want {
			t.Errorf("%s moved by %v, want %v", series, got, want)
		}
	}
	t.Logf("pod start %.3fs, pull %v bytes from %s in %.3fs", during["husk_pod_start_duration_seconds_sum"],
		during[`husk_image_pull_bytes_total{registry="`+registry+`"}`], registry, during[`husk_image_pull_duration_seconds_sum{registry="`+registry+`"}`])
	if s := during["husk_pod_start_duration_seconds_sum"]; s <= 0 || s > 60 {
		t.Errorf("pod start latency sum %vs", s)
	}
	for series, want := range map[string]float64{
		`husk_pods{state="ready"}`: 1, `husk_containers{state="running"}`: 1, `husk_shims`: 1,
	} {
		if got := during[series]; got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if during["go_goroutines"] == 0 || during["process_resident_memory_bytes"] == 0 {
		t.Error("no Go runtime or process metrics")
	}

	removePod(t, d, podID)
	if _, err := d.Img.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		t.Fatal(err)
	}
	after := scrapeMetrics(t, d)
	if after[`husk_pods{state="ready"}`] != 0 || after[`husk_shims`] != 0 || after[`husk_containers{state="running"}`] != 0 {
		t.Errorf("after removal: pods %v, shims %v, running containers %v", after[`husk_pods{state="ready"}`], after[`husk_shims`], after[`husk_containers{state="running"}`])
	}
	if runs := after["husk_image_gc_runs_total"] - during["husk_image_gc_runs_total"]; runs < 1 {
		t.Errorf("RemoveImage ran %v collections", runs)
	}
	if n := after[`husk_image_gc_removed_total{kind="layer"}`] - during[`husk_image_gc_removed_total{kind="layer"}`]; n < 1 {
		t.Errorf("RemoveImage's collection removed %v layers", n)
	}

	// A pod running across a restart is counted as recovered by the new
	// daemon (whose counters start from zero).
	pull(t, d, ref)
	pod2 := podConfig("metrics-restart")
	pod2ID := runPod(t, d, pod2)
	d.Stop()
	d.Start()
	restarted := scrapeMetrics(t, d)
	if got := restarted[`husk_recovered_pods_total{outcome="running"}`]; got != 1 {
		t.Errorf("recovered running pods %v, want 1", got)
	}
	if got := restarted[`husk_shims`]; got != 1 {
		t.Errorf("shims after restart %v, want 1", got)
	}
	removePod(t, d, pod2ID)
}

var metricsAddr = regexp.MustCompile(`serving metrics"? address=(http://\S+/metrics)`)

// scrapeMetrics reads the daemon's /metrics (its address from the log,
// as the test asks for port 0) into series -> value, a series written
// as the text format names it: name{label="value",...} with sorted labels.
func scrapeMetrics(t *testing.T, d *Daemon) map[string]float64 {
	t.Helper()
	var url string
	waitFor(t, 10*time.Second, "the metrics endpoint in the daemon log", func() bool {
		ms := metricsAddr.FindAllStringSubmatch(d.Log(), -1)
		if len(ms) == 0 {
			return false
		}
		url = ms[len(ms)-1][1] // the latest daemon's
		return true
	})
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.Metric {
			labels := labelString(m.Label)
			switch {
			case m.Counter != nil:
				out[name+labels] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[name+labels] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[name+"_count"+labels] = float64(m.Histogram.GetSampleCount())
				out[name+"_sum"+labels] = m.Histogram.GetSampleSum()
			case m.Untyped != nil:
				out[name+labels] = m.Untyped.GetValue()
			}
		}
	}
	return out
}

func labelString(ls []*dto.LabelPair) string {
	if len(ls) == 0 {
		return ""
	}
	parts := make([]string, 0, len(ls))
	for _, l := range ls { // the text format's parser keeps them sorted
		parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
	}
	return "{" + strings.Join(parts, ",") + "}"
}
