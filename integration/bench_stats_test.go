package integration

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// BenchmarkListContainerStats times ListContainerStats as kubelet calls
// it (no filter) over N running containers: N/2 pods of two `sleep`
// containers each. N is 500 unless HUSK_BENCH_CONTAINERS says otherwise;
// setting them up takes about a minute and ~1 GB. Reported: p50/p90 of
// the whole RPC, the first call (every writable layer walked in the
// request) and the per-container cost at p50.
func BenchmarkListContainerStats(b *testing.B) {
	n := 500
	if v, err := strconv.Atoi(os.Getenv("HUSK_BENCH_CONTAINERS")); err == nil && v > 0 {
		n = v
	}
	ref := busyboxRef(b)
	d := StartDaemon(b)
	pull(b, d, ref)
	ctx := ctxT(b, 30*time.Minute)

	pods := make([]string, n/2)
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	next := 0
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(pods) || firstErr != nil {
					return
				}
				if err := startBenchPod(d, ref, i, &pods[i]); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	b.Logf("%d pods, %d containers started in %v", len(pods), n, time.Since(start).Round(time.Millisecond))

	list := func() time.Duration {
		t0 := time.Now()
		r, err := d.RT.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{})
		el := time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		if len(r.Stats) != n {
			b.Fatalf("ListContainerStats: %d containers, want %d", len(r.Stats), n)
		}
		for _, s := range r.Stats {
			if s.GetCpu() == nil || s.GetMemory() == nil || s.GetWritableLayer() == nil {
				b.Fatalf("container %s without figures: %v", s.Attributes.Id, s)
			}
		}
		return el
	}
	first := list()
	b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
		var ds []time.Duration
		for b.Loop() {
			ds = append(ds, list())
		}
		p50 := percentile(ds, .5)
		b.ReportMetric(p50, "p50-ms")
		b.ReportMetric(percentile(ds, .9), "p90-ms")
		b.ReportMetric(float64(first.Microseconds())/1000, "first-ms")
		b.ReportMetric(p50*1000/float64(n), "us/container")
	})

	start = time.Now()
	wg = sync.WaitGroup{}
	ch := make(chan string)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ch {
				if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
					b.Errorf("remove pod %s: %v", id, err)
				}
			}
		}()
	}
	for _, id := range pods {
		ch <- id
	}
	close(ch)
	wg.Wait()
	b.Logf("removed in %v", time.Since(start).Round(time.Millisecond))
}

func startBenchPod(d *Daemon, ref string, i int, id *string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pod, cc := benchPod(i, ref, true)
	rp, err := d.RT.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	if err != nil {
		return fmt.Errorf("pod %d: %w", i, err)
	}
	*id = rp.PodSandboxId
	for _, name := range []string{"a", "b"} {
		cc.Metadata.Name = name
		cr, err := d.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: rp.PodSandboxId, Config: cc, SandboxConfig: pod})
		if err != nil {
			return fmt.Errorf("pod %d container %s: %w", i, name, err)
		}
		if _, err := d.RT.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
			return fmt.Errorf("pod %d start %s: %w", i, name, err)
		}
	}
	return nil
}
