package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestCLIDebug drives the husk CLI's debugging commands (exec -i/-t,
// attach, port-forward, stats, top, info, completion) against an isolated
// daemon, with a real busybox pod.
func TestCLIDebug(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	pull(t, d, ref)
	h := newHuskCLI(t, d)
	ctx := ctxT(t, 5*time.Minute)

	pod := podConfig("cli-debug")
	pod.LogDirectory = filepath.Join(d.Dir, "logs")
	podID := runPod(t, d, pod)
	shell := runContainer(t, d, podID, pod, ctrConfig("shell", ref, "sleep", "3600"))

	t.Run("ExecStdin", func(t *testing.T) {
		out, errOut, code := h.run("hello\nworld\n", "exec", "-i", "shell", "--", "cat")
		if code != 0 || out != "hello\nworld\n" {
			t.Fatalf("echo | husk exec -i shell -- cat: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		// stdout and stderr stay apart without -t, and the exit code is
		// husk's.
		out, errOut, code = h.run("abc\n", "exec", "-i", "shell", "--", "sh", "-c", "read x; echo got-$x; echo to-stderr >&2; exit 5")
		if code != 5 || out != "got-abc\n" || errOut != "to-stderr\n" {
			t.Fatalf("exec -i with exit 5: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})

	t.Run("ExecStreams", func(t *testing.T) {
		// Without -i/-t output is live: the first line arrives while the
		// command still runs (ExecSync would print it only at the end).
		cmd := h.command(context.Background(), "exec", "shell", "--", "sh", "-c", "echo first; sleep 60")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		line := make(chan string, 1)
		go func() {
			l, _ := bufio.NewReader(out).ReadString('\n')
			line <- l
		}()
		select {
		case l := <-line:
			if l != "first\n" {
				t.Fatalf("husk exec printed %q first", l)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("husk exec printed nothing while its command ran")
		}
		// --sync: ExecSync, with its timeout.
		if out, _, code := h.run("", "exec", "--sync", "shell", "--", "echo", "synced"); code != 0 || out != "synced\n" {
			t.Fatalf("exec --sync: exit %d, stdout %q", code, out)
		}
	})

	t.Run("ExecTTY", func(t *testing.T) {
		p := startPtyHusk(t, h, 31, 101, "exec", "-it", "shell", "--", "sh", "-c",
			`tty; stty size; while read l; do [ "$l" = q ] && exit 3; stty size; done`)
		p.waitOutput(t, "31 101")
		if !strings.Contains(p.output(), "/dev/pts/") {
			t.Errorf("exec -it: no pty in the container: %q", p.output())
		}
		// A new window size reaches the container's terminal on SIGWINCH.
		if err := unix.IoctlSetWinsize(int(p.slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 120}); err != nil {
			t.Fatal(err)
		}
		if err := p.cmd.Process.Signal(syscall.SIGWINCH); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 15*time.Second, "the resized terminal in the container", func() bool {
			_, _ = p.master.Write([]byte("\n"))
			time.Sleep(200 * time.Millisecond)
			return strings.Contains(p.output(), "40 120")
		})
		if _, err := p.master.Write([]byte("q\n")); err != nil {
			t.Fatal(err)
		}
		if code := p.wait(t); code != 3 {
			t.Errorf("exec -it: exit %d, want the command's 3; output %q", code, p.output())
		}
		// Raw mode is undone: the terminal echoes and is line-buffered again.
		after, err := unix.IoctlGetTermios(int(p.slave.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if after.Lflag&(unix.ECHO|unix.ICANON) != p.before.Lflag&(unix.ECHO|unix.ICANON) || after.Lflag&unix.ICANON == 0 {
			t.Errorf("terminal not restored: lflag %#x, before %#x", after.Lflag, p.before.Lflag)
		}
	})

	t.Run("Attach", func(t *testing.T) {
		cfg := ctrConfig("reader", ref, "sh", "-c", "echo ready; while read l; do echo got:$l; done; echo bye")
		cfg.Stdin, cfg.StdinOnce = true, true
		reader := runContainer(t, d, podID, pod, cfg)
		waitFor(t, 10*time.Second, "reader ready", func() bool {
			data, _ := os.ReadFile(filepath.Join(pod.LogDirectory, "reader.log"))
			return strings.Contains(string(data), "ready")
		})
		out, errOut, code := h.run("hello\nworld\n", "attach", "-i", "reader")
		if code != 0 || !strings.Contains(out, "got:hello\ngot:world\nbye\n") {
			t.Fatalf("attach -i: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		waitFor(t, 10*time.Second, "reader to exit after its stdin closed", func() bool {
			cs, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: reader})
			return err == nil && cs.Status.State == runtimeapi.ContainerState_CONTAINER_EXITED
		})
		// A container made without stdin or tty: the error says so.
		for flag, want := range map[string]string{"-i": "created without stdin", "-t": "created without a terminal"} {
			_, errOut, code := h.run("", "attach", flag, "shell")
			if code == 0 || !strings.Contains(errOut, want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("attach %s to a container without it: exit %d, stderr %q; want one line saying %q", flag, code, errOut, want)
			}
		}
	})

	t.Run("PortForward", func(t *testing.T) {
		runContainer(t, d, podID, pod, ctrConfig("web", ref, "sh", "-c",
			"mkdir -p /www && echo cli-forward-ok > /www/index.html && exec httpd -f -p 8080 -h /www"))
		cmd := h.command(context.Background(), "port-forward", "cli-debug", ":8080")
		so, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() { once.Do(func() { _ = cmd.Process.Kill(); <-done }) })
		line, err := bufio.NewReader(so).ReadString('\n')
		m := regexp.MustCompile(`^Forwarding from 127\.0\.0\.1:(\d+) -> 8080\n$`).FindStringSubmatch(line)
		if err != nil || m == nil {
			t.Fatalf("port-forward printed %q (%v), stderr %q", line, err, errb.String())
		}
		port, _ := strconv.Atoi(m[1])
		hc := http.Client{Timeout: 5 * time.Second}
		if body := getPage(t, hc, fmt.Sprintf("http://127.0.0.1:%d/", port), "httpd through husk port-forward"); string(body) != "cli-forward-ok\n" {
			t.Fatalf("GET through port-forward: %q", body)
		}
		// A second connection over the same forward.
		if body := getPage(t, hc, fmt.Sprintf("http://127.0.0.1:%d/", port), "second GET"); string(body) != "cli-forward-ok\n" {
			t.Fatalf("second GET: %q", body)
		}
		// Listening on IPv4 loopback only: no wildcard, no other address.
		if addrs := tcpListeners(t, port); len(addrs) != 1 || addrs[0] != "127.0.0.1" {
			t.Errorf("port-forward listens on %v, want 127.0.0.1 only", addrs)
		}
		// Ctrl-C ends it cleanly and the port is released.
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			once.Do(func() {})
			if err != nil {
				t.Errorf("port-forward after SIGINT: %v, stderr %q", err, errb.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("port-forward did not stop on SIGINT")
		}
		if addrs := tcpListeners(t, port); len(addrs) != 0 {
			t.Errorf("port %d still listened on after port-forward ended: %v", port, addrs)
		}
	})

	t.Run("Stats", func(t *testing.T) {
		out := h.ok("stats", "--no-stream", "-o", "json")
		var rows []struct {
			ID         string   `json:"id"`
			Name       string   `json:"name"`
			Pod        string   `json:"pod"`
			CPUPercent *float64 `json:"cpuPercent"`
			Memory     uint64   `json:"memoryWorkingSetBytes"`
		}
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("stats -o json: %v: %q", err, out)
		}
		found := false
		for _, r := range rows {
			if r.ID == shell {
				found = true
				if r.Name != "shell" || r.Pod != "cli-debug" || r.Memory == 0 || r.CPUPercent == nil {
					t.Errorf("stats of shell: %+v; want its names, a CPU %% and non-zero memory", r)
				}
			}
		}
		if !found {
			t.Fatalf("stats -o json lacks the shell container: %s", out)
		}
		table := h.ok("stats", "--no-stream", "shell")
		lines := strings.Split(strings.TrimSpace(table), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "CONTAINER") || !strings.HasPrefix(lines[1], shell[:13]) {
			t.Fatalf("stats --no-stream shell:\n%s", table)
		}
		if f := strings.Fields(lines[1]); len(f) < 5 || f[4] == "0B" || !strings.HasSuffix(f[3], "%") {
			t.Errorf("stats row %q: want a CPU %% and non-zero MEM", lines[1])
		}
		pods := h.ok("stats", "--pods", "--no-stream", "cli-debug")
		if !strings.Contains(pods, podID[:13]) || !strings.Contains(pods, "husk-test") {
			t.Errorf("stats --pods:\n%s", pods)
		}
	})

	t.Run("Top", func(t *testing.T) {
		cs, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: shell, Verbose: true})
		if err != nil {
			t.Fatal(err)
		}
		var info struct {
			Pid int `json:"pid"`
		}
		if err := json.Unmarshal([]byte(cs.Info["info"]), &info); err != nil || info.Pid == 0 {
			t.Fatalf("shell's pid from verbose status: %v %q", err, cs.Info["info"])
		}
		out := h.ok("top", "cli-debug")
		var sawPause, sawSleep bool
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) < 7 {
				continue
			}
			if f[0] == "(infra)" && f[6] == "/pause" {
				sawPause = true
			}
			if f[0] == "shell" && f[1] == strconv.Itoa(info.Pid) && strings.Join(f[6:], " ") == "sleep 3600" {
				sawSleep = true
			}
			if f[0] != "CONTAINER" && f[0] != "(infra)" && f[0] != "shell" && f[0] != "web" {
				t.Errorf("top lists a process that is not the pod's: %q", l)
			}
		}
		if !sawPause || !sawSleep {
			t.Errorf("husk top: want the pause and shell's sleep (pid %d):\n%s", info.Pid, out)
		}
	})

	t.Run("Info", func(t *testing.T) {
		out := h.ok("info")
		for _, re := range []string{`(?m)^Runtime:\s+husk `, `(?m)^\s+RuntimeReady\s+true$`, `(?m)^\s+NetworkReady\s+true$`,
			`(?m)^\s+conf dir\s+` + regexp.QuoteMeta(d.CNIDir) + `$`, `(?m)^\s+network\s+\S+ \(cniVersion [0-9.]+\) from ` + regexp.QuoteMeta(d.CNIDir) + `/\S+: bridge`,
			`(?m)^Config:$`, `(?m)^\s+root: ` + regexp.QuoteMeta(d.Root) + `$`} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("husk info lacks %s:\n%s", re, out)
			}
		}
		var js struct {
			Status struct {
				Status struct {
					Conditions []struct {
						Type   string `json:"type"`
						Status bool   `json:"status"`
					} `json:"conditions"`
				} `json:"status"`
			} `json:"status"`
			Info struct {
				CNI struct {
					Network struct {
						Name    string   `json:"name"`
						Plugins []string `json:"plugins"`
					} `json:"network"`
				} `json:"cni"`
			} `json:"info"`
		}
		if err := json.Unmarshal([]byte(h.ok("info", "-o", "json")), &js); err != nil {
			t.Fatal(err)
		}
		if len(js.Status.Status.Conditions) != 2 || !js.Status.Status.Conditions[0].Status || js.Info.CNI.Network.Name == "" ||
			!strings.Contains(strings.Join(js.Info.CNI.Network.Plugins, ","), "bridge") {
			t.Errorf("info -o json: %+v", js)
		}
	})

	t.Run("CompletionAndErrors", func(t *testing.T) {
		if out := h.ok("completion", "bash"); !strings.Contains(out, "__start_husk") {
			t.Errorf("completion bash: not a bash completion script")
		}
		// Container names come from the runtime.
		if out := h.ok("__complete", "exec", "sh"); !regexp.MustCompile(`(?m)^shell\t`).MatchString(out) {
			t.Errorf("completing exec sh: %q, want shell", out)
		}
		// A runtime error is one line with the gRPC code.
		quick := runContainer(t, d, podID, pod, ctrConfig("quick", ref, "true"))
		waitFor(t, 10*time.Second, "quick to exit", func() bool {
			cs, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: quick})
			return err == nil && cs.Status.State == runtimeapi.ContainerState_CONTAINER_EXITED
		})
		_, errOut, code := h.run("", "exec", "-i", "quick", "--", "true")
		if code == 0 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "FailedPrecondition") || !strings.HasPrefix(errOut, "husk: exec in container quick") {
			t.Errorf("exec -i in an exited container: exit %d, stderr %q; want one line with FailedPrecondition", code, errOut)
		}
	})

	removePod(t, d, podID)
	assertDaemonClean(t, d)
}

// startPtyHusk runs husk on a pty, keeping the slave open.
func startPtyHusk(t *testing.T, h *huskCLI, rows, cols uint16, args ...string) *ptyProc {
	t.Helper()
	return startOnPty(t, h.command(context.Background(), args...), rows, cols, true)
}

// tcpListeners returns the local addresses listening on port in this
// network namespace, from /proc/net/tcp and tcp6 (no traffic needed).
func tcpListeners(t *testing.T, port int) []string {
	t.Helper()
	var out []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		file, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(file)
		file.Close()
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fs := strings.Fields(line)
			// sl local_address rem_address st ...; st 0A is LISTEN.
			if len(fs) < 4 || fs[3] != "0A" {
				continue
			}
			hexAddr, hexPort, _ := strings.Cut(fs[1], ":")
			if p, _ := strconv.ParseUint(hexPort, 16, 16); int(p) != port {
				continue
			}
			out = append(out, procNetAddr(hexAddr))
		}
	}
	return out
}

// procNetAddr renders /proc/net/tcp's address (host-order 32-bit words of
// the address, in hex) as text; only IPv4 is decoded, IPv6 shown raw.
func procNetAddr(h string) string {
	if len(h) != 8 {
		return "[" + h + "]"
	}
	v, err := strconv.ParseUint(h, 16, 32)
	if err != nil {
		return h
	}
	return fmt.Sprintf("%d.%d.%d.%d", v&0xff, v>>8&0xff, v>>16&0xff, v>>24)
}

// TestCLIDebugContainerd runs the node-side commands against an isolated
// containerd: top finds a containerd pod's processes by the IDs in its
// cgroups, and exec -i, stats and info work with its streaming server and
// verbose status.
func TestCLIDebugContainerd(t *testing.T) {
	ref := busyboxRef(t)
	ctrd := StartContainerd(t)
	ctx := ctxT(t, 5*time.Minute)
	if _, err := ctrd.Img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		t.Fatalf("containerd PullImage %s: %v", ref, err)
	}
	c := &endpointCLI{t: t, endpoint: ctrd.Endpoint(), dir: ctrd.Dir}
	pod := podConfig("cli-debug-ctrd")
	pod.LogDirectory = filepath.Join(ctrd.Dir, "logs")
	rp, err := ctrd.RT.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	if err != nil {
		t.Fatalf("containerd RunPodSandbox: %v", err)
	}
	podID := rp.PodSandboxId
	cr, err := ctrd.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: ctrConfig("shell", ref, "sleep", "3600"), SandboxConfig: pod})
	if err != nil {
		t.Fatalf("containerd CreateContainer: %v", err)
	}
	if _, err := ctrd.RT.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		t.Fatalf("containerd StartContainer: %v", err)
	}

	out := c.ok("top", "cli-debug-ctrd")
	var sawPause, sawSleep bool
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 7 {
			continue
		}
		sawPause = sawPause || (f[0] == "(infra)" && f[6] == "/pause")
		sawSleep = sawSleep || (f[0] == "shell" && strings.Join(f[6:], " ") == "sleep 3600")
	}
	if !sawPause || !sawSleep {
		t.Errorf("husk top of a containerd pod: want its pause and sleep:\n%s", out)
	}

	if out, errOut, code := c.run("exec", "-i", "shell", "--", "cat"); code != 0 || out != "" {
		t.Errorf("exec -i with empty stdin against containerd: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	stats := c.ok("stats", "--no-stream", "shell")
	if lines := strings.Split(strings.TrimSpace(stats), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[1], cr.ContainerId[:13]) {
		t.Errorf("stats against containerd:\n%s", stats)
	}
	info := c.ok("info")
	for _, re := range []string{`(?m)^Runtime:\s+containerd `, `(?m)^\s+RuntimeReady\s+true$`, `(?m)^\s+network\s+.*bridge`} {
		if !regexp.MustCompile(re).MatchString(info) {
			t.Errorf("husk info against containerd lacks %s:\n%s", re, info)
		}
	}
	if _, err := ctrd.RT.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	if _, err := ctrd.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
}
