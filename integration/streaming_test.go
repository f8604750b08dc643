package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// crictlCmd is a crictl command against d, not yet started.
func crictlCmd(t *testing.T, d *Daemon, args ...string) *exec.Cmd {
	t.Helper()
	bin := filepath.Join(binDir(t), "crictl")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("crictl missing: run `make tools` (%v)", err)
	}
	full := append([]string{"--runtime-endpoint", "unix://" + d.Socket, "--image-endpoint", "unix://" + d.Socket, "--timeout", "60s"}, args...)
	cmd := exec.Command(bin, full...)
	cmd.Env = append(os.Environ(), "CRI_CONFIG_FILE=/dev/null")
	return cmd
}

// crictlIO runs crictl with stdin and returns what it wrote and how it
// ended; a non-zero exit is not a test failure here.
func crictlIO(t *testing.T, d *Daemon, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := crictlCmd(t, d, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("crictl %v hung; stdout %q stderr %q", args, so.String(), se.String())
	}
	return so.String(), se.String(), err
}

// openPty makes a pty pair for crictl's -t, which insists on a terminal
// as its stdin. The slave gets a known size, which crictl sends as the
// first resize.
func openPty(t *testing.T, rows, cols uint16) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// unlockpt(3) and ptsname(3), done by hand.
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// ptyProc is a command running on a pty, as on a user's terminal, with
// what it printed.
type ptyProc struct {
	cmd           *exec.Cmd
	master, slave *os.File      // slave is nil unless kept (startOnPty)
	before        *unix.Termios // the slave's settings before the command ran, when kept
	mu            sync.Mutex
	out           bytes.Buffer
	done          chan int // the exit code
}

// startOnPty starts cmd with a new rows x cols pty as its stdin, stdout and
// stderr. keepSlave keeps the test's end of the slave open, to resize it
// and to read its settings afterwards.
func startOnPty(t *testing.T, cmd *exec.Cmd, rows, cols uint16, keepSlave bool) *ptyProc {
	t.Helper()
	master, slave := openPty(t, rows, cols)
	p := &ptyProc{cmd: cmd, master: master, done: make(chan int, 1)}
	if keepSlave {
		before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		p.slave, p.before = slave, before
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if !keepSlave {
		slave.Close()
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		p.done <- cmd.ProcessState.ExitCode()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return p
}

func startPtyCrictl(t *testing.T, d *Daemon, args ...string) *ptyProc {
	t.Helper()
	return startOnPty(t, crictlCmd(t, d, args...), 31, 101, false)
}

func (p *ptyProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *ptyProc) waitOutput(t *testing.T, want string) {
	t.Helper()
	waitFor(t, 20*time.Second, fmt.Sprintf("%q on the terminal", want), func() bool { return strings.Contains(p.output(), want) })
}

// wait returns the command's exit code.
func (p *ptyProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-p.done:
		return code
	case <-time.After(30 * time.Second):
		t.Fatalf("%s on a pty did not end; output %q", p.cmd.Path, p.output())
		return -1
	}
}

// TestStreaming drives Exec, Attach and PortForward through the streaming
// server with crictl, the client kubelet's own streaming code is shared
// with (client-go remotecommand over SPDY/WebSocket).
func TestStreaming(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	pull(t, d, ref)
	ctx := ctxT(t, 3*time.Minute)

	pod := podConfig("stream")
	pod.LogDirectory = filepath.Join(d.Dir, "logs")
	podID := runPod(t, d, pod)
	shell := runContainer(t, d, podID, pod, ctrConfig("shell", ref, "sleep", "3600"))

	t.Run("ExecNonTTY", func(t *testing.T) {
		out, errOut, err := crictlIO(t, d, "", "exec", shell, "sh", "-c", "echo to-stdout; echo to-stderr >&2")
		if err != nil || out != "to-stdout\n" || !strings.Contains(errOut, "to-stderr\n") {
			t.Fatalf("exec: %v, stdout %q, stderr %q", err, out, errOut)
		}
		// A non-zero exit reaches the client as the exit code.
		out, errOut, err = crictlIO(t, d, "", "exec", shell[:12], "sh", "-c", "echo before-exit; exit 7")
		if err == nil || out != "before-exit\n" || !strings.Contains(errOut, "command terminated with exit code 7") {
			t.Fatalf("exec exit 7: %v, stdout %q, stderr %q", err, out, errOut)
		}
	})

	t.Run("ExecStdin", func(t *testing.T) {
		out, errOut, err := crictlIO(t, d, "hello stdin\nsecond line\n", "exec", "-i", shell, "sh", "-c", "tr a-z A-Z; echo eof-seen")
		if err != nil || out != "HELLO STDIN\nSECOND LINE\neof-seen\n" {
			t.Fatalf("exec -i: %v, stdout %q, stderr %q", err, out, errOut)
		}
	})

	t.Run("ExecTTY", func(t *testing.T) {
		p := startPtyCrictl(t, d, "exec", "-it", shell, "sh", "-c", "tty; stty size; echo TERM=$TERM; read x; echo got-$x; exit 3")
		p.waitOutput(t, "TERM=xterm")
		if _, err := p.master.Write([]byte("typed\n")); err != nil {
			t.Fatal(err)
		}
		code := p.wait(t)
		out := p.output()
		// The container's pty: a /dev/pts of its own, with the size the
		// client's terminal has (sent as a resize), and input echoed.
		for _, want := range []string{"/dev/pts/", "31 101", "got-typed", "exit code 3"} {
			if !strings.Contains(out, want) {
				t.Errorf("tty exec output lacks %q: %q", want, out)
			}
		}
		if code == 0 {
			t.Errorf("tty exec with exit 3: crictl succeeded")
		}
	})

	t.Run("ExecClientGone", func(t *testing.T) {
		// A client that goes away takes its exec process with it.
		cmd := crictlCmd(t, d, "exec", shell, "sh", "-c", "echo started; exec sleep 1234")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		if line != "started\n" {
			t.Fatalf("exec printed %q", line)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		waitFor(t, 10*time.Second, "exec'd sleep to be killed", func() bool {
			return !strings.Contains(execOut(t, d, shell, "ps"), "sleep 1234")
		})
	})

	t.Run("Attach", func(t *testing.T) {
		cfg := ctrConfig("echoer", ref, "sh", "-c", "echo ready; while read l; do echo got:$l; done; echo bye")
		cfg.Stdin, cfg.StdinOnce = true, true
		echoer := runContainer(t, d, podID, pod, cfg)
		logPath := filepath.Join(pod.LogDirectory, "echoer.log")
		waitFor(t, 10*time.Second, "echoer ready", func() bool {
			data, _ := os.ReadFile(logPath)
			return strings.Contains(string(data), "ready")
		})
		// stdin_once: the end of the attach's input is the container's, so
		// it says bye, exits, and the attach ends with it.
		out, errOut, err := crictlIO(t, d, "hello\nworld\n", "attach", "-i", echoer)
		if err != nil || !strings.Contains(out, "got:hello\ngot:world\nbye\n") {
			t.Fatalf("attach -i: %v, stdout %q, stderr %q", err, out, errOut)
		}
		waitFor(t, 10*time.Second, "echoer to exit", func() bool {
			cs, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: echoer})
			return err == nil && cs.Status.State == runtimeapi.ContainerState_CONTAINER_EXITED && cs.Status.ExitCode == 0
		})
		data, _ := os.ReadFile(logPath)
		if !strings.Contains(string(data), "stdout F got:world") {
			t.Errorf("log lacks what the attach sent: %q", data)
		}
		// Attaching to an exited container is a precondition failure.
		if _, err := d.RT.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: echoer, Stdout: true}); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("Attach to exited container: want FailedPrecondition, got %v", err)
		}
	})

	t.Run("AttachOutput", func(t *testing.T) {
		ticker := runContainer(t, d, podID, pod, ctrConfig("ticker", ref, "sh", "-c", "i=0; while true; do i=$((i+1)); echo tick-$i; echo tock-$i >&2; sleep 0.1; done"))
		// Two clients at once, both see the output; then they leave and the
		// container runs on.
		var cmds []*exec.Cmd
		var outs []*bufio.Reader
		for range 2 {
			cmd := crictlCmd(t, d, "attach", ticker)
			so, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			cmds = append(cmds, cmd)
			outs = append(outs, bufio.NewReader(so))
		}
		for i, r := range outs {
			line, err := r.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "tick-") {
				t.Fatalf("attach %d read %q, %v", i, line, err)
			}
		}
		for _, cmd := range cmds {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		time.Sleep(300 * time.Millisecond)
		cs, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ticker})
		if err != nil || cs.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Fatalf("ticker after the clients left: %v %v", cs.GetStatus().GetState(), err)
		}
	})

	t.Run("AttachTTY", func(t *testing.T) {
		cfg := ctrConfig("ttyctr", ref, "sh", "-c", "tty; while read l; do echo tty-got:$l; done")
		cfg.Tty, cfg.Stdin = true, true
		ttyctr := runContainer(t, d, podID, pod, cfg)
		logPath := filepath.Join(pod.LogDirectory, "ttyctr.log")
		waitFor(t, 10*time.Second, "tty container's log to show its pty", func() bool {
			data, _ := os.ReadFile(logPath)
			return strings.Contains(string(data), "stdout F /dev/pts/")
		})
		p := startPtyCrictl(t, d, "attach", "-it", ttyctr)
		// The client sends its size and then input; the container's pty
		// echoes the input and the shell answers.
		waitFor(t, 10*time.Second, "attach to connect", func() bool {
			_, _ = p.master.Write([]byte("ping\n"))
			time.Sleep(200 * time.Millisecond)
			return strings.Contains(p.output(), "tty-got:ping")
		})
		_ = p.cmd.Process.Kill()
		_ = p.wait(t)
		data, _ := os.ReadFile(logPath)
		if !strings.Contains(string(data), "stdout F tty-got:ping") {
			t.Errorf("tty container log lacks the answer: %q", data)
		}
		checkCRILog(t, logPath)
	})

	t.Run("PortForward", func(t *testing.T) {
		runContainer(t, d, podID, pod, ctrConfig("web", ref, "sh", "-c",
			"mkdir -p /www && echo port-forward-ok > /www/index.html && exec httpd -f -p 8080 -h /www"))
		port, _ := portForward(t, d, podID, 8080)
		hc := http.Client{Timeout: 5 * time.Second}
		if body := getPage(t, hc, "http://127.0.0.1:"+port+"/", "httpd through port-forward"); string(body) != "port-forward-ok\n" {
			t.Fatalf("port-forward got %q", body)
		}
		// A second connection over the same forward.
		resp, err := hc.Get("http://127.0.0.1:" + port + "/")
		if err != nil {
			t.Fatalf("second GET: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "port-forward-ok\n" {
			t.Fatalf("second GET got %q", body)
		}
	})

	t.Run("Validation", func(t *testing.T) {
		for _, c := range []struct {
			what string
			err  error
			want codes.Code
		}{
			{"Exec unknown container", call(d.RT.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: "nonexistent", Cmd: []string{"true"}, Stdout: true})), codes.NotFound},
			{"Exec without cmd", call(d.RT.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: shell, Stdout: true})), codes.InvalidArgument},
			{"Exec tty+stderr", call(d.RT.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: shell, Cmd: []string{"true"}, Tty: true, Stderr: true})), codes.InvalidArgument},
			{"Exec no streams", call(d.RT.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: shell, Cmd: []string{"true"}})), codes.InvalidArgument},
			{"Attach unknown container", call(d.RT.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: "nonexistent", Stdout: true})), codes.NotFound},
			{"PortForward unknown pod", call(d.RT.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: "nonexistent"})), codes.NotFound},
			{"PortForward without pod", call(d.RT.PortForward(ctx, &runtimeapi.PortForwardRequest{})), codes.InvalidArgument},
		} {
			if status.Code(c.err) != c.want {
				t.Errorf("%s: want %v, got %v", c.what, c.want, c.err)
			}
		}
		stopped := runContainer(t, d, podID, pod, ctrConfig("quick", ref, "true"))
		waitFor(t, 10*time.Second, "quick container to exit", func() bool {
			cs, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: stopped})
			return err == nil && cs.Status.State == runtimeapi.ContainerState_CONTAINER_EXITED
		})
		if _, err := d.RT.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: stopped, Cmd: []string{"true"}, Stdout: true}); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("Exec in exited container: want FailedPrecondition, got %v", err)
		}
		// The URL points at the loopback streaming server.
		r, err := d.RT.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: shell, Cmd: []string{"true"}, Stdout: true})
		if err != nil || !strings.HasPrefix(r.GetUrl(), "http://127.0.0.1:") {
			t.Errorf("Exec URL %q, %v", r.GetUrl(), err)
		}
	})

	removePod(t, d, podID)
	assertDaemonClean(t, d)
}

// call keeps only the error of a gRPC call.
func call[T any](_ T, err error) error { return err }

// TestPortForwardHostNetwork forwards to a port of a host-network pod,
// which is the host's own loopback.
func TestPortForwardHostNetwork(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	pull(t, d, ref)
	pod := podConfig("pf-host")
	pod.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}}
	podID := runPod(t, d, pod)
	port := 20000 + os.Getpid()%10000
	web := ctrConfig("web", ref, "sh", "-c",
		fmt.Sprintf("mkdir -p /www && echo host-pf-ok > /www/index.html && exec httpd -f -p 127.0.0.1:%d -h /www", port))
	// kubelet sends the pod's network mode with each container too.
	web.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: pod.Linux.SecurityContext.NamespaceOptions}
	runContainer(t, d, podID, pod, web)
	local, stopForward := portForward(t, d, podID, port)
	hc := http.Client{Timeout: 5 * time.Second}
	if body := getPage(t, hc, "http://127.0.0.1:"+local+"/", "host-network httpd through port-forward"); string(body) != "host-pf-ok\n" {
		t.Fatalf("port-forward got %q", body)
	}
	stopForward()
	removePod(t, d, podID)
	assertDaemonClean(t, d)
}

// portForward runs `crictl port-forward POD 0:REMOTE` and returns the local
// port it listens on and a function that stops it (also run at cleanup).
func portForward(t *testing.T, d *Daemon, podID string, remote int) (string, func()) {
	t.Helper()
	cmd := crictlCmd(t, d, "port-forward", podID, fmt.Sprintf("0:%d", remote))
	so, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) }
	t.Cleanup(stop)
	re := regexp.MustCompile(fmt.Sprintf(`Forwarding from 127\.0\.0\.1:(\d+) -> %d`, remote))
	br := bufio.NewReader(so)
	var port string
	for port == "" {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("port-forward output ended: %v (%q)", err, line)
		}
		if m := re.FindStringSubmatch(line); m != nil {
			port = m[1]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, br) }()
	return port, stop
}

// getPage waits until url answers 200 and returns the body.
func getPage(t *testing.T, hc http.Client, url, what string) []byte {
	t.Helper()
	var body []byte
	waitFor(t, 15*time.Second, what, func() bool {
		resp, err := hc.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(resp.Body)
		return resp.StatusCode == 200
	})
	return body
}
