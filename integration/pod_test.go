package integration

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestPodEndToEnd runs the path kubelet takes for a pod: pull, sandbox,
// two containers talking over the pod's localhost, the host reaching the
// pod IP, exec, logs, then stop and remove with nothing left behind.
func TestPodEndToEnd(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	pull(t, d, ref)

	pod := podConfig("e2e")
	pod.LogDirectory = filepath.Join(d.Dir, "logs")
	pod.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 8080, HostPort: 31080 + int32(os.Getpid()%1000)}}
	podID := runPod(t, d, pod)

	a := runContainer(t, d, podID, pod, ctrConfig("server", ref, "sh", "-c",
		"trap '' TERM; mkdir -p /www && echo hello-from-A > /www/index.html && exec httpd -f -p 8080 -h /www"))
	b := runContainer(t, d, podID, pod, ctrConfig("client", ref, "sh", "-c",
		"for i in $(seq 1 100); do wget -q -O - http://127.0.0.1:8080/ && break; sleep 0.1; done; echo client-done; exec sleep 3600"))

	// B fetched A's page over the pod's loopback: its log says so.
	logB := filepath.Join(pod.LogDirectory, "client.log")
	waitFor(t, 15*time.Second, "client log to hold A's page", func() bool {
		data, _ := os.ReadFile(logB)
		return strings.Contains(string(data), "hello-from-A") && strings.Contains(string(data), "client-done")
	})
	checkCRILog(t, logB)

	// The host reaches A through the pod IP that PodSandboxStatus reports.
	ps, err := d.RT.PodSandboxStatus(ctxT(t, 10*time.Second), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: podID})
	if err != nil {
		t.Fatal(err)
	}
	if ps.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("pod state %v", ps.Status.State)
	}
	ip := ps.Status.GetNetwork().GetIp()
	if ip == "" {
		t.Fatal("PodSandboxStatus reports no IP")
	}
	hc := http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + ip + ":8080/")
	if err != nil {
		t.Fatalf("GET pod IP %s: %v", ip, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(body)) != "hello-from-A" {
		t.Fatalf("host got %q from the pod", body)
	}

	// ExecSync: output, exit code, and the timeout kubelet's probes rely on.
	ctx := ctxT(t, time.Minute)
	ex, err := d.RT.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: b, Cmd: []string{"wget", "-q", "-O", "-", "http://127.0.0.1:8080/"}, Timeout: 10})
	if err != nil || ex.ExitCode != 0 || string(ex.Stdout) != "hello-from-A\n" {
		t.Fatalf("exec wget: %v, exit %d, stdout %q stderr %q", err, ex.GetExitCode(), ex.GetStdout(), ex.GetStderr())
	}
	ex, err = d.RT.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: b[:12], Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}})
	if err != nil || ex.ExitCode != 3 || string(ex.Stdout) != "out\n" || string(ex.Stderr) != "err\n" {
		t.Fatalf("exec exit 3: %v, exit %d, stdout %q stderr %q", err, ex.GetExitCode(), ex.GetStdout(), ex.GetStderr())
	}
	start := time.Now()
	_, err = d.RT.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: b, Cmd: []string{"sleep", "30"}, Timeout: 1})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("exec past its timeout: want DeadlineExceeded, got %v", err)
	}
	if time.Since(start) > 20*time.Second {
		t.Fatalf("timed-out exec was not killed: took %v", time.Since(start))
	}

	// Status of a running container.
	cs, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: a})
	if err != nil {
		t.Fatal(err)
	}
	if cs.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING || cs.Status.StartedAt == 0 || cs.Status.ImageRef == "" || cs.Status.LogPath == "" {
		t.Fatalf("status of running A: %+v", cs.Status)
	}

	// A ignores SIGTERM (inherited SIG_IGN): stop escalates to SIGKILL after the grace.
	if _, err := d.RT.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: a, Timeout: 1}); err != nil {
		t.Fatal(err)
	}
	cs, err = d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: a})
	if err != nil {
		t.Fatal(err)
	}
	if cs.Status.State != runtimeapi.ContainerState_CONTAINER_EXITED || cs.Status.ExitCode != 137 || cs.Status.Reason != "Error" || cs.Status.FinishedAt == 0 {
		t.Fatalf("status of stopped A: state %v exit %d reason %q finished %d", cs.Status.State, cs.Status.ExitCode, cs.Status.Reason, cs.Status.FinishedAt)
	}

	if _, err := d.RT.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	// Stop is idempotent.
	if _, err := d.RT.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatalf("second StopPodSandbox: %v", err)
	}
	if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, d, podID)
	assertDaemonClean(t, d)
}

var criLine = regexp.MustCompile(`^(\S+) (stdout|stderr) (F|P) (.*)$`)

// checkCRILog checks every line of a container log is a CRI record with a
// parseable RFC 3339 timestamp.
func checkCRILog(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		m := criLine.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("log line is not CRI format: %q", sc.Text())
		}
		if _, err := time.Parse(time.RFC3339Nano, m[1]); err != nil {
			t.Fatalf("log timestamp %q: %v", m[1], err)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("log %s is empty", path)
	}
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
