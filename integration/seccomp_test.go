package integration

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestSeccompRuntimeDefault checks that RuntimeDefault (the Docker-derived
// profile containerd and CRI-O start from) blocks what it should: creating
// a user namespace, which it allows only with CAP_SYS_ADMIN. The same
// command succeeds unconfined, so the filter is what stops it.
func TestSeccompRuntimeDefault(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	pull(t, d, ref)
	ctx := ctxT(t, time.Minute)
	pod := podConfig("seccomp")
	// The sandbox asks for RuntimeDefault too: husk's pause runs under it
	// (narrowed to the native ABI).
	pod.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{Seccomp: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}}
	podID := runPod(t, d, pod)
	st, err := d.RT.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: podID, Verbose: true})
	var info struct {
		Pid int `json:"pid"`
	}
	if err != nil || jsonUnmarshal(st.Info["info"], &info) != nil {
		t.Fatalf("infra pid: %v", err)
	}
	if status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", info.Pid)); !strings.Contains(string(status), "Seccomp:\t2") {
		t.Errorf("the pause runs without its seccomp filter:\n%s", status)
	}

	run := func(name string, profile *runtimeapi.SecurityProfile) string {
		cc := ctrConfig(name, ref, "sleep", "3600")
		cc.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{Seccomp: profile}
		return runContainer(t, d, podID, pod, cc)
	}
	confined := run("confined", &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault})
	free := run("free", &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined})

	if got := strings.TrimSpace(execOut(t, d, confined, "sh", "-c", "grep ^Seccomp: /proc/self/status")); !strings.HasSuffix(got, "2") {
		t.Errorf("RuntimeDefault container: %q, want filter mode 2", got)
	}
	ex, err := d.RT.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: confined, Cmd: []string{"unshare", "-U", "true"}, Timeout: 10})
	if err != nil {
		t.Fatal(err)
	}
	if ex.ExitCode == 0 || !strings.Contains(string(ex.Stderr), "not permitted") {
		t.Errorf("unshare -U under RuntimeDefault: exit %d, stderr %q; want it blocked", ex.ExitCode, ex.Stderr)
	}
	ex, err = d.RT.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: free, Cmd: []string{"unshare", "-U", "true"}, Timeout: 10})
	if err != nil || ex.ExitCode != 0 {
		t.Errorf("unshare -U unconfined: %v exit %d stderr %q; want it allowed", err, ex.GetExitCode(), ex.GetStderr())
	}
	if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, d, podID)
}

// TestSeccompNativeArchOnly: with seccomp_native_arch_only the filter
// still blocks what RuntimeDefault blocks for native programs.
func TestSeccompNativeArchOnly(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemonWith(t, DaemonOptions{SeccompNativeArchOnly: true})
	pull(t, d, ref)
	ctx := ctxT(t, time.Minute)
	pod := podConfig("native")
	podID := runPod(t, d, pod)
	cc := ctrConfig("confined", ref, "sleep", "3600")
	cc.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{Seccomp: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}}
	c := runContainer(t, d, podID, pod, cc)
	ex, err := d.RT.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: c, Cmd: []string{"unshare", "-U", "true"}, Timeout: 10})
	if err != nil || ex.ExitCode == 0 || !strings.Contains(string(ex.Stderr), "not permitted") {
		t.Errorf("unshare -U under a native-only RuntimeDefault: %v exit %d stderr %q; want it blocked", err, ex.GetExitCode(), ex.GetStderr())
	}
	if got := strings.TrimSpace(execOut(t, d, c, "echo", "ok")); got != "ok" {
		t.Errorf("ordinary exec under the native-only filter: %q", got)
	}
	if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, d, podID)
}
