// Command node-e2e runs the Kubernetes node conformance suite
// (k8s.io/kubernetes/test/e2e_node, built by `make node-e2e-bin` from the
// kubelet's pin) against an isolated husk: a registry on 127.0.0.1 serves
// stand-ins of every image the suite pulls (built by testenv), husk's
// registry mirrors point every upstream name there, and the suite starts
// its own etcd and kube-apiserver in its process and kubelet as a plain
// process (this machine has no systemd-run). It prints the summary, the
// failures, and a closing line `node-e2e: N passed, N failed, N skipped`,
// and puts back what the suite changes on the host. --runtime containerd
// runs the same suite, images and mirrors against Debian's containerd
// (testenv.Containerd), for comparison.
//
//	go run ./integration/nodee2e --bin bin [--runtime husk|containerd] [--focus RE] [--procs N] [-- extra e2e_node.test flags]
package main

import (
	"bufio"
	"context"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/husk-runtime/husk/integration/testenv"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

//go:embed skips.txt
var skipsFile string

// The peers' default node e2e jobs skip these (containerd's and CRI-O's
// `NodeConformance` jobs); skips.txt adds what this host cannot do.
const defaultSkip = `\[Flaky\]|\[Slow\]|\[Serial\]`

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "node-e2e:", err)
		os.Exit(1)
	}
}

func run() error {
	bin := flag.String("bin", "bin", "directory holding husk, husk-shim, husk-oci, kubelet and e2e_node.test")
	focus := flag.String("focus", `\[NodeConformance\]`, "ginkgo focus")
	strict := flag.Bool("strict", false, "exit non-zero when a spec fails")
	timeout := flag.Duration("timeout", 80*time.Minute, "the whole run's limit")
	runtimeName := flag.String("runtime", "husk", "the runtime under test: husk, or containerd (Debian's, for comparison)")
	procs := flag.Int("procs", 4, "ginkgo processes sharing the one kubelet (1: run e2e_node.test itself)")
	flag.Parse()
	binDir, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	for _, b := range []string{"husk", "husk-shim", "husk-oci", "kubelet", "e2e_node.test", "ginkgo"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return fmt.Errorf("%s missing in %s (make node-e2e-bin builds the suite and kubelet): %w", b, binDir, err)
		}
	}
	dir, err := os.MkdirTemp("", "husk-nodee2e-")
	if err != nil {
		return err
	}
	// Pods with a user namespace walk down to their rootfs as the mapped
	// root: the dirs above the daemon's root must let others through.
	if err := os.Chmod(dir, 0o711); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	host := saveHost()
	defer host.restore()

	// Ctrl-C or a SIGTERM ends the suite the way ginkgo ends on SIGINT
	// (its cleanup stops kubelet, etcd and the apiserver), then the host is
	// put back as usual.
	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(sigCtx, *timeout)
	defer cancel()

	reg, err := testenv.StartRegistryProcess(filepath.Join(dir, "registry"))
	if err != nil {
		return err
	}
	defer reg.Stop()
	fmt.Println("registry on", reg.Addr, "- building and pushing the node e2e images")
	base, err := testenv.BuildBusybox(testenv.DefaultCacheDir())
	if err != nil {
		return err
	}
	if err := testenv.PushNodeE2EImages(ctx, reg.Addr, base, testenv.DefaultCacheDir()); err != nil {
		return err
	}
	certs := filepath.Join(dir, "certs.d")
	// 127.0.0.2:5000 has nothing listening: pulling through it proves the
	// mirror configuration is in force before the suite starts.
	guard := "127.0.0.2:5000"
	if err := testenv.WriteMirrorHosts(certs, reg.Addr, append(testenv.NodeE2EUpstreamHosts, guard)); err != nil {
		return err
	}
	// Hosts whose pulls the suite expects to fail: a mirror where nothing
	// listens, so the failure is local and nothing reaches for the internet.
	if err := testenv.WriteMirrorHosts(certs, "127.0.0.1:1", testenv.NodeE2EDeadHosts); err != nil {
		return err
	}

	var rt *runtimeUnderTest
	switch *runtimeName {
	case "husk":
		rt, err = startHusk(binDir, dir, certs)
	case "containerd":
		rt, err = startContainerd(reg.Addr, guard)
	default:
		err = fmt.Errorf("--runtime %q: husk or containerd", *runtimeName)
	}
	if err != nil {
		return err
	}
	defer rt.stop()
	// The suite reads the runtime's pid (its process and memory checks).
	pidFile := filepath.Join(dir, "runtime.pid")
	if err := os.WriteFile(pidFile, fmt.Appendf(nil, "%d\n", rt.pid), 0o644); err != nil {
		return err
	}
	if _, err := rt.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: guard + "/e2e-test-images/busybox:1.37.0-2"}}); err != nil {
		return fmt.Errorf("guard pull through the mirror failed, so the mirrors are not in force: %w", err)
	}

	// Pods with dnsPolicy Default get kubelet's resolvConf, the host's
	// unless set: a spec that runs `ping google.com` would send a DNS query
	// off the machine. A loopback nameserver where nothing listens keeps
	// every lookup here (and failing at once).
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"), 0o644); err != nil {
		return err
	}
	kubeletCfg := filepath.Join(dir, "kubelet-base.yaml")
	if err := os.WriteFile(kubeletCfg, []byte(kubeletBase+fmt.Sprintf("resolvConf: %q\n", resolv)), 0o644); err != nil {
		return err
	}
	report := filepath.Join(dir, "report")
	if err := os.MkdirAll(report, 0o755); err != nil {
		return err
	}
	skip := defaultSkip
	for _, l := range strings.Split(skipsFile, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			skip += "|" + l
		}
	}
	ginkgoArgs := []string{
		"--no-color",
		"--focus", *focus,
		"--skip", skip,
		"--timeout", timeout.String(),
		"--json-report", filepath.Join(report, "report.json"),
	}
	args := []string{
		"--container-runtime-endpoint", rt.endpoint,
		"--container-runtime-process-name", rt.process,
		"--container-runtime-pid-file", pidFile,
		"--kubelet-config-file", kubeletCfg,
		"--prepull-images=false",
		"--report-dir", report,
		"--node-name", "husk-e2e-node",
	}
	if rt.featureGates != "" {
		// The suite passes them to kubelet too.
		args = append(args, "--feature-gates", rt.featureGates)
	}
	args = append(args, flag.Args()...)
	// The suite runs the kubelet found beside it (a link to bin/kubelet). With more
	// than one process, ginkgo's CLI (built from the suite's ginkgo pin)
	// runs them; the first starts etcd, the apiserver and kubelet for all,
	// as upstream's node e2e jobs run it (--nodes=8).
	// ginkgo's CLI runs a compiled suite in the suite's own directory,
	// where it writes its kubeconfig, kubelet config and tokens: links in
	// the run's dir keep bin/ clean.
	suite := filepath.Join(dir, "e2e_node.test")
	for _, b := range []string{"e2e_node.test", "kubelet"} {
		if err := os.Symlink(filepath.Join(binDir, b), filepath.Join(dir, b)); err != nil {
			return err
		}
	}
	var cmd *exec.Cmd
	if *procs > 1 {
		cli := append([]string{"--procs", strconv.Itoa(*procs)}, ginkgoArgs...)
		cli = append(append(cli, suite, "--"), args...)
		cmd = exec.CommandContext(ctx, filepath.Join(binDir, "ginkgo"), cli...)
	} else {
		for _, a := range ginkgoArgs {
			if strings.HasPrefix(a, "--") {
				a = "--ginkgo." + a[2:]
			}
			args = append(args, a)
		}
		cmd = exec.CommandContext(ctx, suite, args...)
	}
	// The suite writes its kubeconfig and kubelet config into its working
	// directory.
	cmd.Dir = dir
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 3 * time.Minute
	path, err := pathWithoutSystemdRun(dir)
	if err != nil {
		return err
	}
	cmd.Env = append(os.Environ(), "KUBE_TEST_REPO_LIST=", "PATH="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	logPath := filepath.Join(dir, "e2e_node.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Println("running e2e_node.test in", *procs, "processes, focus", *focus)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	var failures []string
	summary := ""
	sc := bufio.NewScanner(io.TeeReader(out, logf))
	sc.Buffer(nil, 4<<20)
	failRe := regexp.MustCompile(`^\s*\[FAIL\] (.*)$`)
	for sc.Scan() {
		line := sc.Text()
		if m := failRe.FindStringSubmatch(line); m != nil {
			failures = append(failures, m[1])
		}
		if strings.Contains(line, "Passed |") && strings.Contains(line, "Failed |") {
			summary = strings.TrimSpace(line)
		}
		if strings.HasPrefix(line, "Ran ") {
			fmt.Println(line)
		}
	}
	runErr := cmd.Wait()
	took := time.Since(start).Round(time.Second)

	rt.removePods()
	fmt.Println("node-e2e summary:", summary, "in", took)
	passed, failed, skipped := testenv.GinkgoCounts(summary)
	for _, f := range failures {
		fmt.Println("FAILED:", f)
	}
	// The closing line.
	fmt.Printf("node-e2e: %d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if summary == "" {
		return fmt.Errorf("e2e_node.test did not run to the end: %v (logs: %s)", runErr, rt.keepLogs(dir))
	}
	kept := rt.keepLogs(dir)
	fmt.Println("logs:", kept)
	if runErr != nil && *strict {
		return fmt.Errorf("%d specs failed (logs: %s)", failed, kept)
	}
	return nil
}

// kubeletBase is the suite's base kubelet configuration
// (test/e2e_node/jenkins/default-kubelet-config.yaml) for this host: cgroup
// v1 needs failCgroupV1 false since kubelet 1.35, and these machines have
// swap off but no guarantee of it.
const kubeletBase = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: /
failCgroupV1: false
failSwapOn: false
podCIDR: "10.100.0.0/24"
volumeStatsAggPeriod: 10s
fileCheckFrequency: 10s
evictionPressureTransitionPeriod: 30s
evictionHard:
  memory.available: 250Mi
  nodefs.available: 10%
  nodefs.inodesFree: 5%
evictionMinimumReclaim:
  nodefs.available: 5%
  nodefs.inodesFree: 5%
serializeImagePulls: false
`

// pathWithoutSystemdRun is a PATH in which systemd-run cannot be found. The
// suite starts kubelet through systemd-run whenever it is in PATH, and
// Debian installs it with the systemd package even where systemd is not
// PID 1 (as on these machines), where it can only fail ("System has not
// been booted with systemd"). /usr/bin (and /bin, its link) is replaced by
// a dir of links to each of its programs but that one.
func pathWithoutSystemdRun(dir string) (string, error) {
	shadow := filepath.Join(dir, "usr-bin")
	if err := os.MkdirAll(shadow, 0o755); err != nil {
		return "", err
	}
	ents, err := os.ReadDir("/usr/bin")
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		if e.Name() == "systemd-run" {
			continue
		}
		if err := os.Symlink(filepath.Join("/usr/bin", e.Name()), filepath.Join(shadow, e.Name())); err != nil {
			return "", err
		}
	}
	var keep []string
	for _, p := range filepath.SplitList(os.Getenv("PATH")) {
		if p != "/usr/bin" && p != "/bin" {
			keep = append(keep, p)
		}
	}
	return strings.Join(append(keep, shadow), string(os.PathListSeparator)), nil
}

// runtimeUnderTest is the CRI runtime the suite runs against.
type runtimeUnderTest struct {
	name     string
	endpoint string
	process  string // its program name, for the suite's process checks
	pid      int
	img      runtimeapi.ImageServiceClient
	// featureGates are kubelet's (and the suite's) for this runtime.
	featureGates string
	logs         func(dir string) map[string][]byte
	removePods   func()
	stop         func()
}

// keepLogs copies the run's logs to /tmp as husk-nodee2e-* or
// containerd-nodee2e-*.
func (rt *runtimeUnderTest) keepLogs(dir string) string {
	prefix := rt.name + "-nodee2e-"
	kept := testenv.KeepLogs(dir, prefix, "e2e_node.log", "report/kubelet.log", "report/report.json")
	for name, data := range rt.logs(dir) {
		dst := filepath.Join(os.TempDir(), prefix+name)
		if os.WriteFile(dst, data, 0o644) == nil {
			kept += ", " + dst
		}
	}
	return kept
}

func startHusk(binDir, dir, certs string) (*runtimeUnderTest, error) {
	if err := os.MkdirAll(filepath.Join(dir, "cni"), 0o755); err != nil {
		return nil, err
	}
	d, err := testenv.StartHusk(binDir, dir, filepath.Join(dir, "husk.sock"), "husknode0", daemonConfig(dir, certs))
	if err != nil {
		return nil, err
	}
	return &runtimeUnderTest{
		name: "husk", endpoint: "unix://" + d.Socket, process: "husk", pid: d.Pid(), img: d.Img,
		// kubelet's cAdvisor has no handler for husk's containers, so
		// kubelet takes pod and container stats, /metrics/cadvisor
		// included, from the CRI. The suite's ContainerMetrics spec
		// skips itself under this gate; TestKubelet checks those series.
		featureGates: "PodAndContainerStatsFromCRI=true",
		logs: func(dir string) map[string][]byte {
			b, _ := os.ReadFile(filepath.Join(dir, "daemon.log"))
			return map[string][]byte{"daemon.log": b}
		},
		removePods: d.RemovePods,
		stop:       d.Stop,
	}, nil
}

// startContainerd starts Debian's containerd as the integration tests
// start it (testenv.Containerd), on the same registry, mirrors, subnet and
// CNI plugins as husk gets, with the suite's test-handler runtime.
func startContainerd(registry, guard string) (*runtimeUnderTest, error) {
	c, err := testenv.StartContainerd(testenv.ContainerdOptions{
		SandboxImage: "registry.k8s.io/pause:3.10.2",
		Registry:     registry,
		MirrorHosts:  append(testenv.NodeE2EUpstreamHosts, guard),
		Subnet:       "10.100.0.0/24",
		Handlers:     []string{"test-handler"},
	})
	if err != nil {
		return nil, err
	}
	// containerd reads certs.d at each pull.
	if err := testenv.WriteMirrorHosts(c.CertsDir, "127.0.0.1:1", testenv.NodeE2EDeadHosts); err != nil {
		c.Cleanup()
		return nil, err
	}
	return &runtimeUnderTest{
		name: "containerd", endpoint: c.Endpoint(), process: "containerd", pid: c.Pid(), img: c.Img,
		logs: func(string) map[string][]byte {
			return map[string][]byte{"containerd.log": []byte(c.Log())}
		},
		// Cleanup (at stop) removes the pods.
		removePods: func() {},
		stop: func() {
			for _, err := range c.Cleanup() {
				fmt.Fprintln(os.Stderr, err)
			}
		},
	}, nil
}

// daemonConfig is the isolated husk's configuration. The suite's
// RuntimeClass specs name test-handler; kubelet's pod CIDR (kubeletBase) is
// the default network's subnet.
func daemonConfig(dir, certs string) string {
	return fmt.Sprintf(`root = %q
state = %q
socket = %q
[cni]
conf_dir = %q
default_network = true
bridge = "husknode0"
subnet = "10.100.0.0/24"
[registry]
config_path = %q
auth_file = ""
[runtimes.test-handler]
type = "husk"
`, filepath.Join(dir, "root"), filepath.Join(dir, "run"), filepath.Join(dir, "husk.sock"), filepath.Join(dir, "cni"), certs) +
		testenv.NRIConfig(dir, filepath.Join(dir, "nri.sock"))
}
