package integration

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Benchmarks are run by `make bench`; they report figures, never assert
// them (these machines are noisy).

var runtimeDefault = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}

// benchPod is a pod and container config as kubelet would send them, with
// seccomp RuntimeDefault on both unless unconfined.
func benchPod(i int, ref string, unconfined bool) (*runtimeapi.PodSandboxConfig, *runtimeapi.ContainerConfig) {
	pod := podConfig(fmt.Sprintf("bench-%d", i))
	ctr := ctrConfig("app", ref, "sleep", "3600")
	ctr.LogPath = ""
	if !unconfined {
		pod.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{Seccomp: runtimeDefault}
		ctr.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{Seccomp: runtimeDefault}
	}
	return pod, ctr
}

func percentile(ds []time.Duration, p float64) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return float64(s[i].Microseconds()) / 1000
}

// BenchmarkPodStart times RunPodSandbox, CreateContainer+StartContainer and
// the whole pod start with the image present. "warm" runs pods back to
// back; "cold" idles 500 ms before each, which on cgroup v1 hosts makes the
// first cgroup move of a burst slow (see libcontainer-notes.md). "seccomp"
// gives the sandbox and the container RuntimeDefault, as kubelet does with
// seccompDefault; "unconfined" shows what the filter costs.
func BenchmarkPodStart(b *testing.B) {
	ref := busyboxRef(b)
	d := StartDaemon(b)
	pull(b, d, ref)
	native := StartDaemonWith(b, DaemonOptions{SeccompNativeArchOnly: true})
	pull(b, native, ref)
	for _, name := range []string{"warm/seccomp", "cold/seccomp", "warm/unconfined", "cold/unconfined", "warm/seccomp-native-only"} {
		mode, filter, _ := strings.Cut(name, "/")
		d := d
		if filter == "seccomp-native-only" {
			// seccomp_native_arch_only: filters for the native ABI alone.
			d = native
		}
		b.Run(name, func(b *testing.B) {
			var runp, ctr, total []time.Duration
			ctx := ctxT(b, 30*time.Minute)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if mode == "cold" {
					time.Sleep(500 * time.Millisecond)
				}
				pod, cc := benchPod(i, ref, filter == "unconfined")
				b.StartTimer()
				t0 := time.Now()
				rp, err := d.RT.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				cr, err := d.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: rp.PodSandboxId, Config: cc, SandboxConfig: pod})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := d.RT.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				b.StopTimer()
				runp, ctr, total = append(runp, t1.Sub(t0)), append(ctr, t2.Sub(t1)), append(total, t2.Sub(t0))
				if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: rp.PodSandboxId}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.StopTimer()
			b.ReportMetric(percentile(runp, .5), "runp-p50-ms")
			b.ReportMetric(percentile(runp, .9), "runp-p90-ms")
			b.ReportMetric(percentile(ctr, .5), "create+start-p50-ms")
			b.ReportMetric(percentile(ctr, .9), "create+start-p90-ms")
			b.ReportMetric(percentile(total, .5), "pod-p50-ms")
			b.ReportMetric(percentile(total, .9), "pod-p90-ms")
		})
	}
	// Where the time went, per stage, for the last pods (debug log lines).
	var lines []string
	for _, l := range strings.Split(d.Log(), "\n") {
		if strings.Contains(l, " steps\"") {
			lines = append(lines, l)
		}
	}
	if len(lines) > 4 {
		lines = lines[len(lines)-4:]
	}
	b.Log("last stage timings:\n" + strings.Join(lines, "\n"))
}

// memory is a process's memory as /proc/PID/smaps_rollup reports it, in kB.
type memory struct{ rss, pss, private float64 }

func procMemory(pid int) (memory, error) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "smaps_rollup"))
	if err != nil {
		return memory{}, err
	}
	defer f.Close()
	var m memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(fields[1], 64)
		switch fields[0] {
		case "Rss:":
			m.rss = v
		case "Pss:":
			m.pss = v
		case "Private_Clean:", "Private_Dirty:":
			m.private += v
		}
	}
	return m, sc.Err()
}

// BenchmarkPodMemory runs 10 pods, each with one container, and reports
// the memory a pod costs: its shim plus its infra (pause) process, as PSS
// (shared pages paid once per machine), RSS and private memory.
func BenchmarkPodMemory(b *testing.B) {
	ref := busyboxRef(b)
	d := StartDaemon(b)
	pull(b, d, ref)
	const pods = 10
	ctx := ctxT(b, 10*time.Minute)
	var infra []int
	for i := 0; i < pods; i++ {
		pod, cc := benchPod(i, ref, false)
		podID := runPod(b, d, pod)
		runContainer(b, d, podID, pod, cc)
		st, err := d.RT.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: podID, Verbose: true})
		if err != nil {
			b.Fatal(err)
		}
		var info struct {
			Pid int `json:"pid"`
		}
		if err := jsonUnmarshal(st.Info["info"], &info); err != nil || info.Pid == 0 {
			b.Fatalf("infra pid from verbose status: %v %q", err, st.Info["info"])
		}
		infra = append(infra, info.Pid)
	}
	time.Sleep(2 * time.Second) // let the shims settle after their last request
	for i := 0; i < b.N; i++ {
		var shim, pause memory
		for _, pid := range shimPids(d.State) {
			m, err := procMemory(pid)
			if err != nil {
				b.Fatal(err)
			}
			shim.rss, shim.pss, shim.private = shim.rss+m.rss, shim.pss+m.pss, shim.private+m.private
		}
		for _, pid := range infra {
			m, err := procMemory(pid)
			if err != nil {
				b.Fatal(err)
			}
			pause.rss, pause.pss, pause.private = pause.rss+m.rss, pause.pss+m.pss, pause.private+m.private
		}
		b.ReportMetric((shim.pss+pause.pss)/pods, "pod-PSS-kB")
		b.ReportMetric((shim.rss+pause.rss)/pods, "pod-RSS-kB")
		b.ReportMetric((shim.private+pause.private)/pods, "pod-private-kB")
		b.ReportMetric(shim.pss/pods, "shim-PSS-kB")
		b.ReportMetric(shim.rss/pods, "shim-RSS-kB")
		b.ReportMetric(pause.pss/pods, "infra-PSS-kB")
		b.ReportMetric(pause.rss/pods, "infra-RSS-kB")
	}
}
