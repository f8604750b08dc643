package integration

import (
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestStats checks the stats RPCs report real figures: a container that
// burns CPU shows its usage rising and a rate, one holding 50 MB shows it
// in its working set, a file written in a container grows its writable
// layer, traffic to an httpd in the pod shows on the pod's eth0, and the
// filters and errors follow the CRI contract. Then the metrics RPCs.
func TestStats(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	pull(t, d, ref)
	ctx := ctxT(t, 3*time.Minute)

	pod := podConfig("stats")
	pod.Labels = map[string]string{"app": "stats"}
	podID := runPod(t, d, pod)
	withLabel := func(cfg *runtimeapi.ContainerConfig, role string) *runtimeapi.ContainerConfig {
		cfg.Labels = map[string]string{"role": role}
		return cfg
	}
	burner := runContainer(t, d, podID, pod, withLabel(ctrConfig("burner", ref, "sh", "-c", "while :; do :; done"), "burner"))
	hog := runContainer(t, d, podID, pod, withLabel(ctrConfig("hog", ref, "sh", "-c",
		`x=$(head -c 50000000 /dev/zero | tr '\0' a); while :; do sleep 3600; done`), "hog"))
	web := runContainer(t, d, podID, pod, withLabel(ctrConfig("web", ref, "sh", "-c",
		"mkdir -p /www && head -c 300000 /dev/zero > /www/f && exec httpd -f -p 8080 -h /www"), "web"))

	cstats := func(id string) *runtimeapi.ContainerStats {
		t.Helper()
		r, err := d.RT.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: id})
		if err != nil {
			t.Fatalf("ContainerStats %s: %v", id, err)
		}
		return r.Stats
	}

	// CPU: the cumulative figure rises, and the second sample has a rate.
	s1 := cstats(burner)
	time.Sleep(1200 * time.Millisecond)
	s2 := cstats(burner)
	c1, c2 := s1.GetCpu().GetUsageCoreNanoSeconds().GetValue(), s2.GetCpu().GetUsageCoreNanoSeconds().GetValue()
	if c2 <= c1 || c1 == 0 {
		t.Fatalf("burner CPU usage did not rise: %d then %d", c1, c2)
	}
	if nc := s2.GetCpu().GetUsageNanoCores().GetValue(); nc < 1e8 {
		t.Fatalf("burner usage_nano_cores = %d, want a busy loop's share of a core", nc)
	}
	if s2.Attributes.Id != burner || s2.Attributes.Metadata.GetName() != "burner" || s2.Attributes.Labels["role"] != "burner" {
		t.Fatalf("attributes: %+v", s2.Attributes)
	}
	if s2.GetMemory().GetWorkingSetBytes() == nil || s2.GetMemory().GetTimestamp() == 0 {
		t.Fatalf("memory figures missing: %+v", s2.GetMemory())
	}
	t.Logf("burner: cpu %d ns, %d nanocores", c2, s2.GetCpu().GetUsageNanoCores().GetValue())
	// Pressure: wherever the host's cgroup2 mount keeps it (unified, and
	// hybrid with PSI on), for the burner's CPU, memory and io alike; a
	// busy loop sharing two cores with the rest of the test stalls some.
	if hostHasPressure() {
		psi := s2.GetCpu().GetPsi()
		if psi == nil || s2.GetMemory().GetPsi() == nil || s2.GetIo().GetPsi() == nil {
			t.Fatalf("the host keeps PSI, the stats have none: cpu %v memory %v io %v", psi, s2.GetMemory().GetPsi(), s2.GetIo())
		}
		t.Logf("burner: cpu pressure some total %d ns, avg10 %.2f", psi.GetSome().GetTotal(), psi.GetSome().GetAvg10())
	} else if s2.GetCpu().GetPsi() != nil {
		t.Fatalf("PSI reported on a host without it: %v", s2.GetCpu().GetPsi())
	}

	// Memory: the hog holds 50 MB in a shell variable (the loop keeps the
	// shell from exec'ing sleep, which would drop it).
	var ws uint64
	defer func() {
		if t.Failed() {
			t.Logf("hog memory: %v; ps: %s", cstats(hog).GetMemory(), execOut(t, d, hog, "ps", "-o", "pid,rss,args"))
		}
	}()
	waitFor(t, 30*time.Second, "hog working set > 40 MB", func() bool {
		m := cstats(hog).GetMemory()
		ws = m.GetWorkingSetBytes().GetValue()
		return ws > 40<<20 && m.GetUsageBytes().GetValue() >= ws && m.GetRssBytes().GetValue() > 40<<20
	})
	hm := cstats(hog).GetMemory()
	t.Logf("hog: working set %d, usage %d, rss %d, faults %d/%d", ws, hm.GetUsageBytes().GetValue(),
		hm.GetRssBytes().GetValue(), hm.GetPageFaults().GetValue(), hm.GetMajorPageFaults().GetValue())
	if hm.GetPageFaults().GetValue() == 0 {
		t.Fatal("hog has no page faults")
	}

	// Writable layer: a 5 MB file in the container shows up (the figure
	// is refreshed in the background every 2 s).
	l0 := cstats(burner).GetWritableLayer()
	if l0 == nil || l0.GetFsId().GetMountpoint() == "" || l0.GetInodesUsed().GetValue() == 0 {
		t.Fatalf("writable layer: %+v", l0)
	}
	execOut(t, d, burner, "sh", "-c", "dd if=/dev/zero of=/big bs=1M count=5 2>/dev/null && sync")
	waitFor(t, 15*time.Second, "writable layer to grow by 5 MB", func() bool {
		l := cstats(burner).GetWritableLayer()
		return l.GetUsedBytes().GetValue() >= l0.GetUsedBytes().GetValue()+5<<20 && l.GetInodesUsed().GetValue() > l0.GetInodesUsed().GetValue()
	})

	// Network: the host fetches 300 kB from the pod's httpd.
	pstats := func(id string) *runtimeapi.PodSandboxStats {
		t.Helper()
		r, err := d.RT.PodSandboxStats(ctx, &runtimeapi.PodSandboxStatsRequest{PodSandboxId: id})
		if err != nil {
			t.Fatalf("PodSandboxStats %s: %v", id, err)
		}
		return r.Stats
	}
	ps, err := d.RT.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: podID})
	if err != nil {
		t.Fatal(err)
	}
	ip := ps.Status.GetNetwork().GetIp()
	n0 := pstats(podID).GetLinux().GetNetwork().GetDefaultInterface()
	if n0.GetName() != "eth0" {
		t.Fatalf("default interface: %+v", n0)
	}
	hc := http.Client{Timeout: 5 * time.Second}
	var body []byte
	waitFor(t, 15*time.Second, "httpd in the pod to serve", func() bool {
		resp, err := hc.Get("http://" + ip + ":8080/f")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(resp.Body)
		return resp.StatusCode == 200
	})
	if len(body) != 300000 {
		t.Fatalf("fetched %d bytes", len(body))
	}
	p1 := pstats(podID)
	n1 := p1.GetLinux().GetNetwork().GetDefaultInterface()
	if n1.GetTxBytes().GetValue() < n0.GetTxBytes().GetValue()+300000 || n1.GetRxBytes().GetValue() <= n0.GetRxBytes().GetValue() {
		t.Fatalf("eth0 did not count the fetch: before %+v after %+v", n0, n1)
	}
	t.Logf("eth0: rx %d tx %d (errors %d/%d)", n1.GetRxBytes().GetValue(), n1.GetTxBytes().GetValue(),
		n1.GetRxErrors().GetValue(), n1.GetTxErrors().GetValue())

	// The pod's cgroup: everything in it, the processes, its containers.
	lx := p1.GetLinux()
	if pc := lx.GetProcess().GetProcessCount().GetValue(); pc < 4 {
		t.Fatalf("process count %d, want infra + 3 containers", pc)
	}
	if lx.GetMemory().GetWorkingSetBytes().GetValue() < 40<<20 || lx.GetCpu().GetUsageCoreNanoSeconds().GetValue() < c2 {
		t.Fatalf("pod cgroup figures below its containers': %+v %+v", lx.GetMemory(), lx.GetCpu())
	}
	if len(lx.GetContainers()) != 3 {
		t.Fatalf("pod stats hold %d containers, want 3", len(lx.GetContainers()))
	}
	if p1.Attributes.Id != podID || p1.Attributes.Labels["app"] != "stats" {
		t.Fatalf("pod attributes: %+v", p1.Attributes)
	}

	// Filters: label selector, pod id prefix, id prefix.
	list := func(f *runtimeapi.ContainerStatsFilter) []*runtimeapi.ContainerStats {
		t.Helper()
		r, err := d.RT.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		return r.Stats
	}
	if got := list(nil); len(got) != 3 {
		t.Fatalf("ListContainerStats: %d containers, want 3", len(got))
	}
	if got := list(&runtimeapi.ContainerStatsFilter{LabelSelector: map[string]string{"role": "hog"}}); len(got) != 1 || got[0].Attributes.Id != hog {
		t.Fatalf("label filter role=hog: %v", got)
	}
	if got := list(&runtimeapi.ContainerStatsFilter{LabelSelector: map[string]string{"role": "nope"}}); len(got) != 0 {
		t.Fatalf("label filter role=nope: %d", len(got))
	}
	if got := list(&runtimeapi.ContainerStatsFilter{PodSandboxId: podID[:12], Id: web[:12]}); len(got) != 1 || got[0].Attributes.Id != web {
		t.Fatalf("id + pod id prefix filter: %v", got)
	}
	plist := func(f *runtimeapi.PodSandboxStatsFilter) int {
		t.Helper()
		r, err := d.RT.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		return len(r.Stats)
	}
	if n := plist(&runtimeapi.PodSandboxStatsFilter{LabelSelector: map[string]string{"app": "stats"}}); n != 1 {
		t.Fatalf("pod label filter app=stats: %d", n)
	}
	if n := plist(&runtimeapi.PodSandboxStatsFilter{LabelSelector: map[string]string{"app": "other"}}); n != 0 {
		t.Fatalf("pod label filter app=other: %d", n)
	}
	if n := plist(&runtimeapi.PodSandboxStatsFilter{Id: podID[:8]}); n != 1 {
		t.Fatalf("pod id prefix filter: %d", n)
	}

	// Unknown ids are NotFound.
	if _, err := d.RT.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: "feedface"}); status.Code(err) != codes.NotFound {
		t.Fatalf("ContainerStats of an unknown id: %v", err)
	}
	if _, err := d.RT.PodSandboxStats(ctx, &runtimeapi.PodSandboxStatsRequest{PodSandboxId: "feedface"}); status.Code(err) != codes.NotFound {
		t.Fatalf("PodSandboxStats of an unknown id: %v", err)
	}

	// Metrics: every metric names a descriptor and has its label count.
	dr, err := d.RT.ListMetricDescriptors(ctx, &runtimeapi.ListMetricDescriptorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]int{}
	for _, desc := range dr.Descriptors {
		keys[desc.Name] = len(desc.LabelKeys)
	}
	mr, err := d.RT.ListPodSandboxMetrics(ctx, &runtimeapi.ListPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(mr.PodMetrics) != 1 || mr.PodMetrics[0].PodSandboxId != podID {
		t.Fatalf("ListPodSandboxMetrics: %d pods", len(mr.PodMetrics))
	}
	seen := map[string]bool{}
	check := func(m *runtimeapi.Metric) {
		n, ok := keys[m.Name]
		if !ok || n != len(m.LabelValues) {
			t.Fatalf("metric %s: %d label values, descriptor %v/%d", m.Name, len(m.LabelValues), ok, n)
		}
		// id, image, namespace, pod, container, then the metric's own.
		if m.LabelValues[2] != pod.Metadata.Namespace || m.LabelValues[3] != pod.Metadata.Name {
			t.Fatalf("metric %s labels %q: not the pod's namespace and name", m.Name, m.LabelValues)
		}
		seen[m.Name+"/"+strings.Join(append([]string{m.LabelValues[4], m.LabelValues[1]}, m.LabelValues[5:]...), ",")] = true
	}
	for _, m := range mr.PodMetrics[0].Metrics {
		check(m)
	}
	for _, cm := range mr.PodMetrics[0].ContainerMetrics {
		for _, m := range cm.Metrics {
			check(m)
			if m.Name == "container_memory_working_set_bytes" && cm.ContainerId == hog && m.Value.GetValue() < 40<<20 {
				t.Fatalf("hog working set metric %d", m.Value.GetValue())
			}
		}
	}
	for _, want := range []string{"container_cpu_usage_seconds_total/burner," + ref + ",total", "container_network_transmit_bytes_total/POD,,eth0",
		"container_processes/POD,", "container_fs_usage_bytes/web," + ref} {
		if !seen[want] {
			t.Errorf("no metric %s", want)
		}
	}

	if _, err := d.RT.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	// A stopped pod still lists, without cgroup or network figures.
	r, err := d.RT.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{})
	if err != nil || len(r.Stats) != 1 || r.Stats[0].GetLinux().GetNetwork() != nil {
		t.Fatalf("stats of a stopped pod: %v %v", err, r)
	}
	if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, d, podID)
	assertDaemonClean(t, d)
}

// hostHasPressure says whether the host's cgroup2 mount (the only one, or
// the hybrid one beside the v1 hierarchies) has pressure files.
func hostHasPressure() bool {
	for _, p := range []string{"/sys/fs/cgroup/cpu.pressure", "/sys/fs/cgroup/unified/cpu.pressure"} {
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
			return true
		}
	}
	return false
}
