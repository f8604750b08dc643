package testenv

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// offline keeps the go commands the builds run from reaching the module
// proxy: everything they need must already be in the module cache.
func offline(t *testing.T) {
	t.Helper()
	t.Setenv("GOPROXY", "off")
}

var (
	nodeE2EOnce sync.Once
	nodeE2EImgs map[string]Artifact
	nodeE2EErr  error
)

func nodeE2EImages(t *testing.T) map[string]Artifact {
	t.Helper()
	b := base(t)
	offline(t)
	nodeE2EOnce.Do(func() { nodeE2EImgs, nodeE2EErr = NodeE2EImages(b, DefaultCacheDir()) })
	if nodeE2EErr != nil {
		t.Fatal(nodeE2EErr)
	}
	return nodeE2EImgs
}

// nodeE2EImage returns the linux/GOARCH image of the stand-in for the
// manifest.go image ID id.
func nodeE2EImage(t *testing.T, id string) v1.Image {
	t.Helper()
	ref, ok := nodeE2ERefs[id]
	if !ok {
		t.Fatalf("no reference for %s", id)
	}
	return imageOf(t, nodeE2EImages(t)[ref])
}

// toolsBin returns a directory holding the tools program as nmeter, curl
// and nc (it picks the command by the name it runs as).
func toolsBin(t *testing.T) string {
	t.Helper()
	prog, err := goProgram(DefaultCacheDir(), "e2e-tools", toolsSource)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "nmeter"), prog, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"curl", "nc"} {
		if err := os.Symlink("nmeter", filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// upstreamRefs reads the pinned k8s.io/kubernetes test/utils/image/manifest.go
// and returns every image ID's reference (registry/name:version).
func upstreamRefs(t *testing.T) map[string]string {
	t.Helper()
	offline(t)
	modDir, _, err := kubernetesModule()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(modDir, "test", "utils", "image", "manifest.go"))
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(src), "initRegistry = RegistryList{")
	if start < 0 {
		t.Fatal("manifest.go: no initRegistry")
	}
	block := string(src[start:])
	block = block[:strings.Index(block, "\n\t}")]
	registries := map[string]string{}
	for _, m := range regexp.MustCompile(`(\w+):\s+"([^"]+)",`).FindAllStringSubmatch(block, -1) {
		registries[m[1]] = m[2]
	}
	refs := map[string]string{}
	for _, m := range regexp.MustCompile(`configs\[(\w+)\] = Config\{list\.(\w+), "([^"]+)", "([^"]+)"\}`).FindAllStringSubmatch(string(src), -1) {
		reg, ok := registries[m[2]]
		if !ok {
			t.Fatalf("manifest.go: %s uses unknown registry %s", m[1], m[2])
		}
		refs[m[1]] = reg + "/" + m[3] + ":" + m[4]
	}
	if len(refs) < 20 {
		t.Fatalf("manifest.go: only %d image configs parsed", len(refs))
	}
	return refs
}

func TestNodeE2ERefsMatchManifest(t *testing.T) {
	up := upstreamRefs(t)
	for id, ref := range nodeE2ERefs {
		if up[id] != ref {
			t.Errorf("%s: serving %q, manifest.go says %q", id, ref, up[id])
		}
	}
	// What the [NodeConformance] selection pulls, and what the runner's
	// brief asks for besides.
	for _, id := range []string{"Agnhost", "AgnhostPrev", "BusyBox", "Pause", "Nginx", "NginxNew",
		"NonRoot", "Nonewprivs", "Kitten", "Nautilus", "GlibcDnsTesting"} {
		if _, ok := nodeE2ERefs[id]; !ok {
			t.Errorf("%s (%s) is not served", id, up[id])
		}
	}
	if _, ok := nodeE2ERefs["InvalidRegistryImage"]; ok {
		t.Error("InvalidRegistryImage must not be served: specs expect its pull to fail")
	}
	invalid, err := name.ParseReference(up["InvalidRegistryImage"])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(NodeE2EDeadHosts, invalid.Context().RegistryStr()) {
		t.Errorf("InvalidRegistryImage's host %s is not a dead host", invalid.Context().RegistryStr())
	}
	for _, ref := range nodeE2ERefs {
		r, err := name.ParseReference(ref, name.StrictValidation)
		if err != nil {
			t.Fatal(err)
		}
		host := r.Context().RegistryStr()
		if !slices.Contains(NodeE2EUpstreamHosts, host) || slices.Contains(NodeE2EDeadHosts, host) {
			t.Errorf("%s: host %s must be an upstream host and not a dead one", ref, host)
		}
	}
}

func TestNodeE2EImagesTable(t *testing.T) {
	imgs := nodeE2EImages(t)
	var want, got []string
	for _, r := range nodeE2ERefs {
		want = append(want, r)
	}
	for r := range imgs {
		got = append(got, r)
	}
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Fatalf("references:\n got %q\nwant %q", got, want)
	}
	shapes := map[types.MediaType]int{}
	configs := map[v1.Hash]string{}
	for ref, a := range imgs {
		mt, err := a.MediaType()
		if err != nil {
			t.Fatal(err)
		}
		shapes[mt]++
		img := imageOf(t, a)
		c, err := img.ConfigName()
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := configs[c]; ok {
			t.Errorf("%s and %s are the same image", o, ref)
		}
		configs[c] = ref
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS != "linux" || !cf.Created.Time.Equal(Epoch) {
			t.Errorf("%s: os %q created %v", ref, cf.OS, cf.Created)
		}
	}
	for _, mt := range []types.MediaType{types.DockerManifestSchema2, types.OCIManifestSchema1, types.DockerManifestList, types.OCIImageIndex} {
		if shapes[mt] == 0 {
			t.Errorf("no %s", mt)
		}
	}

	// The two agnhost tags share every layer but their version marker.
	cur, err := nodeE2EImage(t, "Agnhost").Layers()
	if err != nil {
		t.Fatal(err)
	}
	prev, err := nodeE2EImage(t, "AgnhostPrev").Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(cur) != len(prev) {
		t.Fatalf("agnhost layers: %d and %d", len(cur), len(prev))
	}
	for i := range cur {
		a, _ := cur[i].Digest()
		b, _ := prev[i].Digest()
		if (a == b) != (i < len(cur)-1) {
			t.Errorf("agnhost layer %d: %s and %s", i, a, b)
		}
	}

	config := func(id string) v1.Config {
		cf, err := nodeE2EImage(t, id).ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		return cf.Config
	}
	for id, user := range map[string]string{"NonRoot": "1234", "Pause": "65535:65535", "Nonewprivs": "", "Agnhost": "", "BusyBox": ""} {
		if got := config(id).User; got != user {
			t.Errorf("%s: user %q, want %q", id, got, user)
		}
	}
	for _, c := range []struct {
		id              string
		entrypoint, cmd []string
	}{
		{"Agnhost", []string{"/agnhost"}, []string{"pause"}},
		{"AgnhostPrev", []string{"/agnhost"}, []string{"pause"}},
		{"Kitten", []string{"/agnhost"}, []string{"test-webserver"}},
		{"Nautilus", []string{"/agnhost"}, []string{"test-webserver"}},
		{"Pause", []string{"/pause"}, nil},
		{"BusyBox", nil, []string{"sh"}},
		{"Nonewprivs", nil, []string{"nnp"}},
		{"Nginx", []string{"/docker-entrypoint.sh"}, nil},
	} {
		cfg := config(c.id)
		if !slices.Equal(cfg.Entrypoint, c.entrypoint) || !slices.Equal(cfg.Cmd, c.cmd) {
			t.Errorf("%s: entrypoint %q cmd %q, want %q %q", c.id, cfg.Entrypoint, cfg.Cmd, c.entrypoint, c.cmd)
		}
	}

	files := func(id string) map[string]byte {
		f, err := imageFiles(nodeE2EImage(t, id))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	pause := files("Pause")
	if len(pause) != 1 || pause["pause"] == 0 {
		t.Errorf("pause image files: %v", pause)
	}
	for id, paths := range map[string][]string{
		"Agnhost":  {"agnhost", "agnhost-2", "localhost.crt", "localhost.key", "uploads", "bin/bash", "usr/bin/curl", "usr/bin/nc", "bin/nmeter"},
		"Kitten":   {"kitten.jpg", "data.json"},
		"Nautilus": {"nautilus.jpg", "data.json"},
		"BusyBox":  {"bin/nmeter", "bin/sysctl", "bin/top", "bin/pidof", "bin/sleep"},
	} {
		f := files(id)
		for _, p := range paths {
			if _, ok := f[p]; !ok {
				t.Errorf("%s lacks /%s", id, p)
			}
		}
	}

	// Deterministic: a second build gives the same artifacts.
	again, err := NodeE2EImages(base(t), DefaultCacheDir())
	if err != nil {
		t.Fatal(err)
	}
	for ref, a := range imgs {
		d1, _ := a.Digest()
		d2, _ := again[ref].Digest()
		if d1 != d2 {
			t.Errorf("%s: two builds differ: %s %s", ref, d1, d2)
		}
	}
}

var nmeterLine = regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3}$`)

// firstLine runs cmd, returns its first stdout line and closes the pipe as
// `head -n1` does; cmd must then end by itself (SIGPIPE).
func firstLine(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	out.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%s kept running once its reader was gone", cmd.Args)
	}
	return line
}

func TestNodeE2ENmeter(t *testing.T) {
	dir := toolsBin(t)
	nmeter := filepath.Join(dir, "nmeter")

	// The suite's use: date -u +%FT$(nmeter -d0 '%3t' | head -n1)Z.
	cmd := exec.Command(nmeter, "-d0", "%3t")
	cmd.Env = append(os.Environ(), "TZ=UTC")
	before := time.Now()
	line := strings.TrimSuffix(firstLine(t, cmd), "\n")
	if !nmeterLine.MatchString(line) {
		t.Fatalf("nmeter -d0 %%3t: %q", line)
	}
	ts, err := time.Parse(time.RFC3339, before.UTC().Format("2006-01-02T")+line+"Z")
	if err != nil {
		t.Fatal(err)
	}
	if d := ts.Sub(before); d < -time.Second || d > 5*time.Second {
		t.Errorf("nmeter time %s is %v off the clock", line, d)
	}

	// Other forms: %%, literal text, %[tN], %0t, -d MSEC, %r.
	cmd = exec.Command(nmeter, "-d", "100", "a%%b %[t2] %0t%r")
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 64)
	for len(buf) < 2*len("a%b 00:00:00.00 00:00:00\r") {
		b := make([]byte, 64)
		n, err := out.Read(b)
		if err != nil {
			t.Fatal(err)
		}
		buf = append(buf, b[:n]...)
	}
	cmd.Process.Kill()
	cmd.Wait()
	lines := strings.Split(string(buf), "\r")
	re := regexp.MustCompile(`^a%b \d\d:\d\d:\d\d\.\d\d \d\d:\d\d:\d\d$`)
	if !re.MatchString(lines[0]) || !re.MatchString(lines[1]) || lines[0] == lines[1] {
		t.Errorf("nmeter -d 100: %q", buf)
	}

	if err := exec.Command(nmeter, "%c").Run(); err == nil {
		t.Error("nmeter accepted a format it does not implement")
	}
}

func TestNodeE2ECurlNc(t *testing.T) {
	dir := toolsBin(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hostName":
			fmt.Fprint(w, "pod-a")
		case "/dial":
			fmt.Fprintf(w, `{"responses":[%q]}`, r.URL.Query().Get("host"))
		case "/redirect":
			w.Header().Set("Location", "/hostName")
			w.WriteHeader(http.StatusFound)
			fmt.Fprint(w, "moved")
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	hostPort := strings.TrimPrefix(srv.URL, "http://")
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	tool := func(stdin string, name string, args ...string) (stdout, stderr string, code int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(dir, name), args...)
		cmd.Stdin = strings.NewReader(stdin)
		var o, e strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		code = cmd.ProcessState.ExitCode()
		if err != nil && code < 0 {
			t.Fatalf("%s %q: %v", name, args, err)
		}
		return o.String(), e.String(), code
	}
	for _, c := range []struct {
		args         []string
		stdout       string
		stderrPrefix string
		code         int
	}{
		// DialFromNode and DialFromContainer.
		{[]string{"-g", "-q", "-s", "--max-time", "15", "--connect-timeout", "1", srv.URL + "/hostName"}, "pod-a", "", 0},
		{[]string{"-g", "-q", "-s", "http://" + hostPort + "/dial?request=hostname&protocol=http&host=10.0.0.1&port=8080&tries=1"}, `{"responses":["10.0.0.1"]}`, "", 0},
		// GetHTTPCodeFromTestContainer and GetSelfURLStatusCode.
		{[]string{"-g", "-q", "-s", "-o", "/dev/null", "-w", "%{http_code}", srv.URL + "/nothing"}, "404", "", 0},
		{[]string{"-o", "/dev/null", "-i", "-q", "-s", "-w", "%{http_code}", "--connect-timeout", "1", srv.URL + "/hostName"}, "200", "", 0},
		// The exec lifecycle hooks: a plain `curl URL`.
		{[]string{hostPort + "/hostName"}, "pod-a", "", 0},
		{[]string{"-sf", srv.URL + "/nothing"}, "", "", 22},
		{[]string{"-s", srv.URL + "/redirect"}, "moved", "", 0},
		{[]string{"-sL", srv.URL + "/redirect"}, "pod-a", "", 0},
		{[]string{"-g", "-q", "-s", "--connect-timeout", "1", "http://" + closedAddr + "/"}, "", "", 7},
		{[]string{"-s", "-w", "%{http_code}", "http://" + closedAddr + "/"}, "000", "", 7},
		{[]string{"http://" + closedAddr + "/"}, "", "curl: (7) ", 7},
		{[]string{"--no-such-flag", srv.URL}, "", "curl: option --no-such-flag: is unknown", 2},
	} {
		stdout, stderr, code := tool("", "curl", c.args...)
		if stdout != c.stdout || code != c.code || !strings.HasPrefix(stderr, c.stderrPrefix) || (c.stderrPrefix == "" && stderr != "") {
			t.Errorf("curl %q: stdout %q stderr %q exit %d; want %q %q... %d", c.args, stdout, stderr, code, c.stdout, c.stderrPrefix, c.code)
		}
	}
	stdout, _, code := tool("", "curl", "-i", "-s", srv.URL+"/hostName")
	if !strings.HasPrefix(stdout, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(stdout, "\r\n\r\npod-a") || code != 0 {
		t.Errorf("curl -i: %q exit %d", stdout, code)
	}

	// nc -w 1 -u, as DialFromNode's UDP check: netexec's UDP server answers
	// "hostName" with the host name.
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	go func() {
		buf := make([]byte, 1024)
		for {
			n, from, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			if strings.TrimSpace(string(buf[:n])) == "hostName" {
				udp.WriteTo([]byte("pod-a"), from)
			}
		}
	}()
	_, port, _ := net.SplitHostPort(udp.LocalAddr().String())
	start := time.Now()
	stdout, stderr, code := tool("hostName\n", "nc", "-w", "1", "-u", "127.0.0.1", port)
	if stdout != "pod-a" || stderr != "" || code != 0 {
		t.Errorf("nc -w 1 -u: stdout %q stderr %q exit %d", stdout, stderr, code)
	}
	if took := time.Since(start); took < 900*time.Millisecond || took > 5*time.Second {
		t.Errorf("nc -w 1 -u took %v, want about the 1 s idle timeout", took)
	}

	// TCP: stdin to the peer, the peer to stdout until it closes.
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	go func() {
		c, err := tcp.Accept()
		if err != nil {
			return
		}
		line, _ := bufio.NewReader(c).ReadString('\n')
		fmt.Fprintf(c, "echo:%s", line)
		c.Close()
	}()
	_, port, _ = net.SplitHostPort(tcp.Addr().String())
	if stdout, stderr, code := tool("hello\n", "nc", "-w", "5", "127.0.0.1", port); stdout != "echo:hello\n" || code != 0 {
		t.Errorf("nc tcp: stdout %q stderr %q exit %d", stdout, stderr, code)
	}
	_, port, _ = net.SplitHostPort(closedAddr)
	if _, stderr, code := tool("", "nc", "-w", "1", "127.0.0.1", port); code != 1 || !strings.Contains(stderr, "refused") {
		t.Errorf("nc to a closed port: stderr %q exit %d", stderr, code)
	}
}

// inImage runs script with /bin/sh in a chroot of img's file system, in new
// PID, mount, network and UTS namespaces (host name pod-a, its own
// loopback, /proc mounted), and returns its combined output.
func inImage(t *testing.T, img v1.Image, script string) string {
	t.Helper()
	dir := unpacked(t, img)
	return run(t, "unshare", "--pid", "--mount", "--net", "--uts", "--fork", "--kill-child", "chroot", dir, "/bin/sh", "-c",
		"mount -t proc proc /proc; ip link set lo up; hostname pod-a; "+script)
}

func TestNodeE2EBusybox(t *testing.T) {
	img := nodeE2EImage(t, "BusyBox")
	out := inImage(t, img, `
		for a in $(busybox --list); do [ "$a" = linuxrc ] || [ -x /bin/$a ] || echo "missing /bin/$a"; done
		/bin/sysctl kernel/shm_rmid_forced
		/bin/top -b -n 1 >/dev/null && echo top=ok
		/bin/sleep 30 & /bin/pidof sleep >/dev/null && echo pidof=ok; kill $!
		echo "ts=$(date -u +%FT$(nmeter -d0 '%3t' | head -n1)Z)"
		sh -c '_term() { echo caught; exit 0; }; trap _term SIGTERM; kill -TERM $$; sleep 5'
		stat -c %a /tmp; hexdump -C /etc/group | head -n 1 | cut -c1-8; test $(id -u) -eq 0 && echo id=ok
		netstat -ln >/dev/null && echo netstat=ok; df | head -n 1 >/dev/null && echo df=ok
		[[ "${HOSTNAME:-x}" == "${HOSTNAME:-x}" ]] && echo dbl=ok
		sleep 0.1s && sleep 0.000001 && echo sleep=ok
		env 'data-1=value-1' sh -c env | grep -x data-1=value-1
		/bin/sh -c 'echo test > /no/such/file' 2>&1; true`)
	if strings.Contains(out, "missing") {
		t.Errorf("applets missing from /bin:\n%s", out)
	}
	checkOutput(t, out, "kernel.shm_rmid_forced = ", "top=ok", "pidof=ok", "caught", "1777\n", "00000000", "id=ok", "netstat=ok", "df=ok", "dbl=ok", "sleep=ok", "\ndata-1=value-1\n", "/bin/sh: can't create /no/such/file: nonexistent directory")
}

// checkOutput: an image script's output holds every want, and its ts=
// line is the container lifecycle specs' RFC 3339 timestamp.
func checkOutput(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	m := regexp.MustCompile(`ts=(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no timestamp:\n%s", out)
	}
	if _, err := time.Parse(time.RFC3339, m[1]); err != nil {
		t.Errorf("container lifecycle timestamp %q: %v", m[1], err)
	}
}

func TestNodeE2EAgnhost(t *testing.T) {
	img := nodeE2EImage(t, "Agnhost")
	out := inImage(t, img, `
		/agnhost-2 entrypoint-tester override arguments
		/bin/bash -c 'trap "echo bash-term" SIGTERM; kill -TERM $$; echo bash=${BASH_VERSION%%.*}'
		/agnhost netexec --http-port=8080 --udp-port=8081 >/tmp/netexec.log 2>&1 &
		/agnhost netexec --http-port=8443 --udp-port=-1 --tls-cert-file /localhost.crt --tls-private-key-file /localhost.key >/dev/null 2>&1 &
		for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:8080/ && curl -k -s -o /dev/null https://127.0.0.1:8443/ && break; sleep 0.1; done
		echo "host=$(curl -g -q -s --max-time 15 --connect-timeout 1 http://127.0.0.1:8080/hostName)"
		echo "dial=$(curl -g -q -s 'http://127.0.0.1:8080/dial?request=hostname&protocol=http&host=127.0.0.1&port=8080&tries=1')"
		echo "udp=$(echo hostName | nc -w 1 -u 127.0.0.1 8081)"
		echo "tls=$(curl -k -s 'https://127.0.0.1:8443/echo?msg=prestop')"
		sh -c "curl http://127.0.0.1:8080/echo?msg=poststart" >/dev/null 2>&1; grep -c 'GET /echo?msg=poststart' /tmp/netexec.log
		echo "groups=$(id -G user-defined-in-image)"
		echo "ts=$(date -u +%FT$(nmeter -d0 '%3t' | head -n1)Z)"`)
	checkOutput(t, out, "[/agnhost-2 entrypoint-tester override arguments]", "bash-term\nbash=5", "host=pod-a\n", `dial={"responses":["pod-a"]}`,
		"udp=pod-a\n", "tls=prestop\n", "\n1\n", "groups=1000 50000\n")
}

func TestNodeE2EGlibcDNSTesting(t *testing.T) {
	dir := unpacked(t, nodeE2EImage(t, "GlibcDnsTesting"))
	// What kubelet writes for a pod with a subdomain.
	hosts := "127.0.0.1\tlocalhost\n10.100.0.7\tpod-a.sub.ns.svc.cluster.local\tpod-a\n"
	if err := os.WriteFile(filepath.Join(dir, "etc/hosts"), []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	out := run(t, "unshare", "--uts", "--net", "chroot", dir, "/bin/sh", "-c",
		`hostname pod-a; echo $(hostname)';'$(hostname -f)';'; hostname --version 2>&1 | head -n 1`)
	if !strings.HasPrefix(out, "pod-a;pod-a.sub.ns.svc.cluster.local;\n") || !strings.Contains(out, "hostname ") {
		t.Errorf("hostname:\n%s", out)
	}
}

func TestNodeE2EPause(t *testing.T) {
	// Only /pause is in the image (no /dev for unpacked's /dev/null).
	dir := t.TempDir()
	if err := Unpack(nodeE2EImage(t, "Pause"), dir); err != nil {
		t.Fatal(err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		cmd := exec.Command("chroot", "--userspec=65535:65535", dir, "/pause")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// chroot execs /pause in place; give it the time to set its handlers.
		time.Sleep(300 * time.Millisecond)
		cmd.Process.Signal(sig)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil || !strings.Contains(stderr.String(), "Shutting down, got signal") {
				t.Errorf("pause on %v: %v, stderr %q", sig, err, stderr.String())
			}
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			t.Errorf("pause ignored %v", sig)
		}
	}
	// As PID 1 of a PID namespace it reaps the orphans it adopts: a child of
	// a shell that exits (entered into that namespace) must not stay a zombie.
	out := run(t, "sh", "-c", `
		unshare --pid --fork --kill-child chroot --userspec=65535:65535 `+dir+` /pause & u=$!
		sleep 0.3; p=$(pgrep -P $u)
		nsenter -t $p --pid -- sh -c 'sleep 0.2 & exit 0'
		sleep 1; echo "children=$(ps -o stat= --ppid $p | tr -d ' \n')"
		kill -TERM $p; wait $u; echo exit=$?`)
	if !strings.Contains(out, "children=\n") || !strings.Contains(out, "exit=0") {
		t.Errorf("pause as PID 1:\n%s", out)
	}
}

func TestNodeE2ENonRootAndNoNewPrivs(t *testing.T) {
	dir := unpacked(t, nodeE2EImage(t, "NonRoot"))
	if out := run(t, "chroot", "--userspec=1234:1234", dir, "id", "-u"); out != "1234\n" {
		t.Errorf("nonroot id -u: %q", out)
	}
	dir = unpacked(t, nodeE2EImage(t, "Nonewprivs"))
	if out := run(t, "chroot", "--userspec=1000:1000", dir, "/usr/local/bin/nnp"); out != "Effective uid: 0\n" {
		t.Errorf("nonewprivs without NNP: %q", out)
	}
	if out := run(t, "setpriv", "--no-new-privs", "chroot", "--userspec=1000:1000", dir, "/usr/local/bin/nnp"); out != "Effective uid: 1000\n" {
		t.Errorf("nonewprivs with NNP: %q", out)
	}
}

func TestPushNodeE2EImages(t *testing.T) {
	imgs := nodeE2EImages(t)
	reg := StartRegistry(t)
	ctx := context.Background()
	if err := PushNodeE2EImages(ctx, reg.Addr, base(t), DefaultCacheDir()); err != nil {
		t.Fatal(err)
	}
	for ref, a := range imgs {
		r, err := name.ParseReference(reg.Ref(MirrorPath(ref)), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Get(r, remote.WithContext(ctx))
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		wd, _ := a.Digest()
		wmt, _ := a.MediaType()
		if desc.Digest != wd || desc.MediaType != wmt {
			t.Errorf("%s: got %s %s, want %s %s", ref, desc.Digest, desc.MediaType, wd, wmt)
		}
	}
	// Pulled by its platform as a runtime does, busybox has the nmeter.
	r, _ := name.ParseReference(reg.Ref(MirrorPath(nodeE2ERefs["BusyBox"])), name.Insecure)
	pulled, err := remote.Image(r, remote.WithContext(ctx), remote.WithPlatform(*Platform()))
	if err != nil {
		t.Fatal(err)
	}
	files, err := imageFiles(pulled)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := files["bin/nmeter"]; !ok {
		t.Error("pulled busybox lacks /bin/nmeter")
	}
}

func TestGinkgoCounts(t *testing.T) {
	for line, want := range map[string][3]int{
		"SUCCESS! -- 112 Passed | 0 Failed | 0 Pending | 30 Skipped":                     {112, 0, 30},
		"FAIL! -- 109 Passed | 3 Failed | 0 Pending | 30 Skipped":                        {109, 3, 30},
		"FAIL! - Interrupted by User -- 24 Passed | 2 Failed | 0 Pending | 1250 Skipped": {24, 2, 1250},
		"": {0, 0, 0},
	} {
		p, f, s := GinkgoCounts(line)
		if [3]int{p, f, s} != want {
			t.Errorf("GinkgoCounts(%q) = %d, %d, %d, want %v", line, p, f, s, want)
		}
	}
}
