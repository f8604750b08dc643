package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// memoryLimit reads a container's memory limit from its cgroup (v1 or v2).
func memoryLimit(t *testing.T, cgroup string) int64 {
	t.Helper()
	for _, f := range []string{
		filepath.Join("/sys/fs/cgroup/memory", cgroup, "memory.limit_in_bytes"),
		filepath.Join("/sys/fs/cgroup", cgroup, "memory.max"),
	} {
		if b, err := os.ReadFile(f); err == nil {
			n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			return n
		}
	}
	t.Fatalf("no memory limit file for cgroup %s", cgroup)
	return 0
}

// TestUpdateResourcesAndOOM raises and lowers a running container's memory
// limit and checks the cgroup follows; a container that outgrows its limit
// is reported OOMKilled.
func TestUpdateResourcesAndOOM(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	pull(t, d, ref)
	ctx := ctxT(t, 2*time.Minute)
	pod := podConfig("resources")
	podID := runPod(t, d, pod)
	cc := ctrConfig("limited", ref, "sleep", "3600")
	cc.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, CpuShares: 256}
	c := runContainer(t, d, podID, pod, cc)
	cgroup := "/husk/" + podID + "/" + c
	if got := memoryLimit(t, cgroup); got != 64<<20 {
		t.Fatalf("memory limit at create: %d", got)
	}
	for _, want := range []int64{128 << 20, 32 << 20} {
		if _, err := d.RT.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{ContainerId: c,
			Linux: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: want, CpuShares: 256}}); err != nil {
			t.Fatalf("update to %d: %v", want, err)
		}
		if got := memoryLimit(t, cgroup); got != want {
			t.Fatalf("memory limit after update to %d: %d", want, got)
		}
	}

	oc := ctrConfig("hog", ref, "sh", "-c", "x=a; while :; do x=$x$x; done")
	oc.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 24 << 20}
	hog := runContainer(t, d, podID, pod, oc)
	var st *runtimeapi.ContainerStatus
	waitFor(t, 60*time.Second, "the memory hog to be killed", func() bool {
		r, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: hog})
		st = r.GetStatus()
		return err == nil && st.State == runtimeapi.ContainerState_CONTAINER_EXITED
	})
	if st.Reason != "OOMKilled" || st.ExitCode != 137 {
		t.Fatalf("memory hog: reason %q exit %d, want OOMKilled 137", st.Reason, st.ExitCode)
	}
	// Pod-level resize: kubelet has resized the pod cgroup; husk keeps its
	// copy of the sandbox config in step, across a restart too.
	want := &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 256 << 20, CpuShares: 512}
	if _, err := d.RT.UpdatePodSandboxResources(ctx, &runtimeapi.UpdatePodSandboxResourcesRequest{PodSandboxId: podID, Resources: want}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.RT.UpdatePodSandboxResources(ctx, &runtimeapi.UpdatePodSandboxResourcesRequest{PodSandboxId: "feedbeef"}); status.Code(err) != codes.NotFound {
		t.Errorf("UpdatePodSandboxResources of an unknown pod: %v", err)
	}
	d.Stop()
	d.Start()
	rec, err := os.ReadFile(filepath.Join(d.Root, "pods", podID, "pod.json"))
	if err != nil || !strings.Contains(string(rec), `"memory_limit_in_bytes":268435456`) {
		t.Errorf("pod record after UpdatePodSandboxResources and a restart: %v\n%s", err, rec)
	}
	if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, d, podID)
}

// TestReopenContainerLog renames a running container's log away, as
// kubelet's rotation does, and reopens it: the old file and the new one
// together hold every line, none lost or doubled.
func TestReopenContainerLog(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	pull(t, d, ref)
	ctx := ctxT(t, time.Minute)
	pod := podConfig("rotate")
	pod.LogDirectory = filepath.Join(d.Dir, "logs")
	podID := runPod(t, d, pod)
	c := runContainer(t, d, podID, pod, ctrConfig("counter", ref, "sh", "-c", "i=0; while :; do echo line-$i; i=$((i+1)); sleep 0.05; done"))
	logPath := filepath.Join(pod.LogDirectory, "counter.log")
	waitFor(t, 10*time.Second, "first lines", func() bool { b, _ := os.ReadFile(logPath); return strings.Count(string(b), "\n") > 5 })
	rotated := logPath + ".1"
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	if _, err := d.RT.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: c}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "lines in the new file", func() bool { b, _ := os.ReadFile(logPath); return strings.Count(string(b), "\n") > 5 })
	if _, err := d.RT.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: c, Timeout: 0}); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(rotated)
	cur, _ := os.ReadFile(logPath)
	re := regexp.MustCompile(`stdout F line-(\d+)`)
	next := 0
	for _, m := range re.FindAllStringSubmatch(string(old)+string(cur), -1) {
		n, _ := strconv.Atoi(m[1])
		if n != next {
			t.Fatalf("line %d follows line %d: lost or doubled across the reopen", n, next-1)
		}
		next++
	}
	if !strings.Contains(string(cur), fmt.Sprintf("line-%d", next-1)) || next < 10 {
		t.Fatalf("new file lacks the last lines (%d lines in all)", next)
	}
	// A container that is not running cannot have its log reopened.
	if _, err := d.RT.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: c}); err == nil {
		t.Fatal("reopen of a stopped container's log succeeded")
	}
	if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, d, podID)
}

// TestPrivilegedContainer checks what privileged means: every capability
// (so mounting works) and the host's devices.
func TestPrivilegedContainer(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	pull(t, d, ref)
	ctx := ctxT(t, time.Minute)
	pod := podConfig("privileged")
	pod.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{Privileged: true}
	podID := runPod(t, d, pod)
	cc := ctrConfig("root", ref, "sleep", "3600")
	cc.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{Privileged: true}
	c := runContainer(t, d, podID, pod, cc)
	execOut(t, d, c, "sh", "-c", "mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && umount /mnt/t")
	if out := execOut(t, d, c, "sh", "-c", "ls /dev"); !strings.Contains(out, "loop") && !strings.Contains(out, "vda") && !strings.Contains(out, "mem") {
		t.Errorf("privileged container lacks host devices:\n%s", out)
	}
	plain := runContainer(t, d, podID, pod, ctrConfig("plain", ref, "sleep", "3600"))
	ex, err := d.RT.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: plain, Cmd: []string{"sh", "-c", "mkdir -p /mnt/t && mount -t tmpfs none /mnt/t"}, Timeout: 10})
	if err != nil || ex.ExitCode == 0 {
		t.Errorf("unprivileged container could mount: %v exit %d", err, ex.GetExitCode())
	}
	if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, d, podID)
}
