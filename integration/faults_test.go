package integration

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/husk-runtime/husk/integration/testenv"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// faultSeed makes a failing run repeatable: HUSK_FAULT_SEED=<seed>.
func faultSeed(t *testing.T) int64 {
	if s := os.Getenv("HUSK_FAULT_SEED"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("HUSK_FAULT_SEED: %v", err)
		}
		return n
	}
	return time.Now().UnixNano()
}

// The daemon SIGKILLed at 50 random points of a pod lifecycle loop (two
// workers making, starting, stopping and removing pods and containers as
// fast as they can), a pod's shim SIGKILLed every tenth round, then for
// 15 s every husk-oci caught mid-way (create, start, delete). After
// every restart the daemon serves at once; the keeper pod's container,
// made before the first kill, runs through all of them (no running
// container is lost); whatever a kill left half-made is removed by the
// restart or by a plain Remove, as kubelet would call it; at the end,
// with every pod removed, nothing is left: no shim, mount, netns, veth,
// IP lease, libcontainer state, pod cgroup or pod dir.
func TestDaemonKilledAnywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("50 kills take about a minute")
	}
	seed := faultSeed(t)
	t.Logf("seed %d (HUSK_FAULT_SEED=%d repeats this run)", seed, seed)
	rng := rand.New(rand.NewSource(seed))
	cgroupsBefore := podCgroups()
	d := StartDaemon(t)
	ref := busyboxRef(t)
	pull(t, d, ref)

	keeperCfg := podConfig("keeper")
	keeper := runPod(t, d, keeperCfg)
	keeperCtr := runContainer(t, d, keeper, keeperCfg, ctrConfig("k", ref, "sleep", "3600"))
	keeperPid := containerPid(t, d, keeperCtr)

	// The workers run one lifecycle after another; calls fail while the
	// daemon is down, and a worker simply starts its next round. Their
	// client is their own (d.RT is replaced at each restart); gRPC
	// reconnects it to each new daemon.
	// A short reconnect backoff: gRPC's default grows to two minutes, and
	// the daemon is back within a second.
	conn, err := grpc.NewClient("unix://"+d.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.5,
			MaxDelay: 100 * time.Millisecond}, MinConnectTimeout: time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	stop := make(chan struct{})
	var workers sync.WaitGroup
	var rounds [2]int
	for w := 0; w < 2; w++ {
		workers.Add(1)
		go func(w int) {
			defer workers.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx := ctxT(t, 30*time.Second)
				pod := podConfig(fmt.Sprintf("churn-%d-%d", w, i))
				pr, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				if cr, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pr.PodSandboxId,
					Config: ctrConfig("c", ref, "sleep", "600"), SandboxConfig: pod}); err == nil {
					_, _ = rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId})
					_, _ = rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: cr.ContainerId, Timeout: 0})
				}
				_, _ = rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pr.PodSandboxId})
				_, _ = rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pr.PodSandboxId})
				rounds[w]++
			}
		}(w)
	}

	const kills = 50
	start := time.Now()
	var shimKills int
	for k := 1; k <= kills; k++ {
		time.Sleep(time.Duration(rng.Intn(400)) * time.Millisecond)
		d.Kill()
		if k%10 == 0 {
			// A churn pod's shim, while no daemon watches it.
			for _, pid := range shimPids(d.State) {
				if !isShimOf(pid, keeper) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
					shimKills++
					break
				}
			}
		}
		d.Start() // waits until the daemon serves
		if _, err := os.Stat("/proc/" + keeperPid); err != nil {
			t.Fatalf("kill %d: the keeper's container (pid %s) is gone", k, keeperPid)
		}
	}
	// husk-oci (what creates, starts and deletes each container) killed
	// mid-way, with the daemon up. A create's clean-up (the shim's delete,
	// then the daemon's rollback) is often killed too: what it leaves is
	// kept for the pod's removal (see sandbox.CreateContainer).
	var ociKills int
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		time.Sleep(time.Duration(rng.Intn(50)) * time.Millisecond)
		for _, pid := range testenv.PidsOf("husk-oci", func(cmdline string) bool { return strings.Contains(cmdline, d.Dir) }) {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				ociKills++
			}
		}
	}
	close(stop)
	workers.Wait()
	t.Logf("%d daemon kills, %d shim kills and %d husk-oci kills in %v; the workers finished %d and %d lifecycles",
		kills, shimKills, ociKills, time.Since(start).Round(time.Second), rounds[0], rounds[1])

	ctx := ctxT(t, 2*time.Minute)
	st, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: keeperCtr})
	if err != nil || st.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("the keeper's container after %d kills: %v %v", kills, err, st)
	}
	// What the kills left: remove every pod as kubelet's GC would.
	pl, err := d.RT.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	left := 0
	for _, p := range pl.Items {
		if p.Id == keeper {
			continue
		}
		left++
		if _, err := d.RT.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			t.Errorf("stop pod %s left by a kill: %v", p.Id, err)
		}
		if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			t.Errorf("remove pod %s left by a kill: %v", p.Id, err)
		}
	}
	t.Logf("%d pods were left between calls by the kills and removed", left)
	removePod(t, d, keeper)
	assertDaemonClean(t, d)
	for dir := range podCgroups() {
		if !cgroupsBefore[dir] {
			t.Errorf("pod cgroup left: %s", dir)
		}
	}
}

// podCgroups lists the pod cgroups husk makes (/husk/<pod id>) in every
// hierarchy.
func podCgroups() map[string]bool {
	out := map[string]bool{}
	for _, dir := range testenv.CgroupDirs("/husk") {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.IsDir() {
				out[filepath.Join(dir, e.Name())] = true
			}
		}
	}
	return out
}

// isShimOf says whether the shim process pid serves pod id (its socket is
// named by the id's first 12 characters).
func isShimOf(pid int, id string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(b, []byte(id[:12]))
}
