package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The soak: 100 pods made and removed in 10 rounds of 10 (each with one
// container, started, stopped and removed as kubelet does it), while a
// kubelet-like poller relists pods and containers every second and reads
// every stat every 10 s. No call may fail; after each round the daemon's
// resident memory and open fds are taken, and the last round's must be
// within 10% of the first's (a leak of a few kB per pod, or one fd per
// pod, shows); nothing of any pod may be left.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak takes a minute or two")
	}
	d := StartDaemon(t)
	ref := busyboxRef(t)
	pull(t, d, ref)

	var calls, failures atomic.Int64
	var failMu sync.Mutex
	var firstFailures []string
	fail := func(what string, err error) {
		calls.Add(1)
		if err == nil {
			return
		}
		failures.Add(1)
		failMu.Lock()
		if len(firstFailures) < 5 {
			firstFailures = append(firstFailures, what+": "+err.Error())
		}
		failMu.Unlock()
	}

	stop := make(chan struct{})
	var pollers sync.WaitGroup
	pollers.Add(1)
	go func() {
		defer pollers.Done()
		relist, stats := time.NewTicker(time.Second), time.NewTicker(10*time.Second)
		defer relist.Stop()
		defer stats.Stop()
		for {
			select {
			case <-stop:
				return
			case <-relist.C:
				ctx := ctxT(t, 10*time.Second)
				_, err := d.RT.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
				fail("ListPodSandbox", err)
				_, err = d.RT.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
				fail("ListContainers", err)
			case <-stats.C:
				ctx := ctxT(t, 10*time.Second)
				_, err := d.RT.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{})
				fail("ListPodSandboxStats", err)
				_, err = d.RT.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{})
				fail("ListContainerStats", err)
				_, err = d.Img.ImageFsInfo(ctx, &runtimeapi.ImageFsInfoRequest{})
				fail("ImageFsInfo", err)
			}
		}
	}()

	pid := d.cmd.Process.Pid
	type sample struct{ rssKB, fds int }
	var samples []sample
	const rounds, perRound = 10, 10
	start := time.Now()
	for r := 0; r < rounds; r++ {
		var wg sync.WaitGroup
		for i := 0; i < perRound; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				ctx := ctxT(t, 2*time.Minute)
				name := fmt.Sprintf("soak-%d-%d", r, i)
				pod := podConfig(name)
				pr, err := d.RT.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
				fail("RunPodSandbox "+name, err)
				if err != nil {
					return
				}
				cr, err := d.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pr.PodSandboxId,
					Config: ctrConfig("c", ref, "sleep", "600"), SandboxConfig: pod})
				fail("CreateContainer "+name, err)
				if err == nil {
					_, err = d.RT.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId})
					fail("StartContainer "+name, err)
					_, err = d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: cr.ContainerId})
					fail("ContainerStatus "+name, err)
					_, err = d.RT.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: cr.ContainerId, Timeout: 1})
					fail("StopContainer "+name, err)
					_, err = d.RT.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: cr.ContainerId})
					fail("RemoveContainer "+name, err)
				}
				_, err = d.RT.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pr.PodSandboxId})
				fail("StopPodSandbox "+name, err)
				_, err = d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pr.PodSandboxId})
				fail("RemovePodSandbox "+name, err)
			}(i)
		}
		wg.Wait()
		// The least of five reads over half a second: a poll in flight
		// holds a connection or two for a moment, which is not a leak.
		s := sample{rssKB: procRSSKB(t, pid), fds: procFds(t, pid)}
		for j := 0; j < 4; j++ {
			time.Sleep(100 * time.Millisecond)
			s.rssKB, s.fds = min(s.rssKB, procRSSKB(t, pid)), min(s.fds, procFds(t, pid))
		}
		samples = append(samples, s)
	}
	close(stop)
	pollers.Wait()
	took := time.Since(start)

	t.Logf("soak: %d pods in %v, %d CRI calls, %d failed", rounds*perRound, took.Round(time.Second), calls.Load(), failures.Load())
	for i, s := range samples {
		t.Logf("after round %2d: daemon RSS %6d kB, open fds %3d", i+1, s.rssKB, s.fds)
	}
	if n := failures.Load(); n > 0 {
		t.Errorf("%d calls failed, first: %s", n, strings.Join(firstFailures, "; "))
	}
	first, last := samples[0], samples[len(samples)-1]
	if float64(last.rssKB) > 1.1*float64(first.rssKB) {
		t.Errorf("daemon RSS grew from %d kB after round 1 to %d kB after round %d (> 10%%)", first.rssKB, last.rssKB, rounds)
	}
	if float64(last.fds) > 1.1*float64(first.fds) {
		t.Errorf("daemon fds grew from %d after round 1 to %d after round %d (> 10%%)", first.fds, last.fds, rounds)
	}
	ctx := ctxT(t, time.Minute)
	if pl, err := d.RT.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err != nil || len(pl.Items) != 0 {
		t.Errorf("pods left: %v %v", err, pl)
	}
	assertDaemonClean(t, d)
}

// procRSSKB is VmRSS of pid, in kB.
func procRSSKB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatalf("no VmRSS for %d", pid)
	return 0
}

// procFds counts pid's open file descriptors.
func procFds(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
