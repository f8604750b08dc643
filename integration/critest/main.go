// Command critest-run runs cri-tools' critest against an isolated husk: it
// starts a registry on 127.0.0.1 serving stand-ins of every image critest
// pulls (built from Debian's busybox), points husk's registry mirrors at it
// so no pull leaves the machine, runs critest, prints the summary and
// cleans up what the suite leaves (pods, host shared memory, temp dirs).
//
//	go run ./integration/critest --bin bin [--strict] [-- extra critest flags]
package main

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/husk-runtime/husk/integration/testenv"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

//go:embed skips.txt
var skipsFile string

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "critest-run:", err)
		os.Exit(1)
	}
}

func run() error {
	bin := flag.String("bin", "bin", "directory holding husk, husk-shim, husk-oci and critest")
	strict := flag.Bool("strict", false, "exit non-zero when a spec fails")
	flag.Parse()
	binDir, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "husk-critest-")
	if err != nil {
		return err
	}
	// Pods with a user namespace walk down to their rootfs as the mapped
	// root: the dirs above the daemon's root must let others through.
	if err := os.Chmod(dir, 0o711); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	shmBefore := shmIDs()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()

	reg, err := testenv.StartRegistryProcess(filepath.Join(dir, "registry"))
	if err != nil {
		return err
	}
	defer reg.Stop()
	fmt.Println("registry on", reg.Addr, "- building and pushing critest images")
	base, err := testenv.BuildBusybox(testenv.DefaultCacheDir())
	if err != nil {
		return err
	}
	if err := testenv.PushCritestImages(ctx, reg.Addr, base, testenv.DefaultCacheDir()); err != nil {
		return err
	}
	certs := filepath.Join(dir, "certs.d")
	// 127.0.0.2:5000 has nothing listening: pulling through it proves the
	// mirror configuration is in force before the suite starts.
	guard := "127.0.0.2:5000"
	if err := testenv.WriteMirrorHosts(certs, reg.Addr, append(testenv.CritestUpstreamHosts, guard)); err != nil {
		return err
	}

	if err := os.MkdirAll(filepath.Join(dir, "cni"), 0o755); err != nil {
		return err
	}
	d, err := testenv.StartHusk(binDir, dir, filepath.Join(dir, "husk.sock"), "huskcritest0", daemonConfig(dir, certs))
	if err != nil {
		return err
	}
	defer d.Stop()
	if _, err := d.Img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: guard + "/e2e-test-images/busybox:1.29-2"}}); err != nil {
		return fmt.Errorf("guard pull through the mirror failed, so the mirrors are not in force: %w", err)
	}

	var skips []string
	for _, l := range strings.Split(skipsFile, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			skips = append(skips, regexp.QuoteMeta(l))
		}
	}
	args := []string{
		"--runtime-endpoint", "unix://" + d.Socket, "--image-endpoint", "unix://" + d.Socket,
		"-nri-socket", nriSocket(dir),
		"--ginkgo.no-color", "--ginkgo.skip", strings.Join(skips, "|"),
	}
	args = append(args, flag.Args()...)
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "critest"), args...)
	cmd.Env = append(os.Environ(), "CRI_CONFIG_FILE=/dev/null")
	cmd.Dir = dir
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	// The logs live in the run's temp dir, removed at the end; a run that
	// fails keeps copies in /tmp for whoever looks into it.
	logPath := filepath.Join(dir, "critest.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Println("running critest")
	if err := cmd.Start(); err != nil {
		return err
	}
	var failures, flaky []string
	summary := ""
	sc := bufio.NewScanner(io.TeeReader(out, logf))
	sc.Buffer(nil, 1<<20)
	failRe := regexp.MustCompile(`^\s*\[FAIL\] (.*)$`)
	for sc.Scan() {
		line := sc.Text()
		if m := failRe.FindStringSubmatch(line); m != nil {
			failures = append(failures, m[1])
		}
		if strings.Contains(line, "[FLAKEY TEST") {
			flaky = append(flaky, strings.TrimSpace(line))
		}
		if strings.Contains(line, "Passed |") && strings.Contains(line, "Failed |") {
			summary = strings.TrimSpace(line)
		}
		if strings.HasPrefix(line, "Ran ") {
			fmt.Println(line)
		}
	}
	runErr := cmd.Wait()

	cleanup(d, shmBefore)
	fmt.Println("critest summary:", summary)
	passed, failed, skipped := testenv.GinkgoCounts(summary)
	for _, f := range failures {
		fmt.Println("FAILED:", f)
	}
	for _, f := range flaky {
		fmt.Println("FLAKY (passed on retry):", f)
	}
	// The closing line CI reads.
	fmt.Printf("critest: %d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if summary == "" {
		return fmt.Errorf("critest did not run to the end: %v (logs: %s)", runErr, testenv.KeepLogs(dir, "husk-", "critest.log", "daemon.log"))
	}
	// The logs are kept either way: with --ginkgo.v they say why each
	// skipped spec was skipped.
	kept := testenv.KeepLogs(dir, "husk-", "critest.log", "daemon.log")
	fmt.Println("logs:", kept)
	if runErr != nil && *strict {
		return fmt.Errorf("critest: %d specs failed (logs: %s)", failed, kept)
	}
	return nil
}

// daemonConfig is the isolated husk's configuration.
func daemonConfig(dir, certs string) string {
	return fmt.Sprintf(`root = %q
state = %q
socket = %q
[cni]
conf_dir = %q
default_network = true
bridge = "huskcritest0"
subnet = "10.198.0.0/16"
[registry]
config_path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "run"), filepath.Join(dir, "husk.sock"), filepath.Join(dir, "cni"), certs) +
		testenv.NRIConfig(dir, nriSocket(dir))
}

// nriSocket is where the isolated husk serves NRI: critest's NRI specs
// connect their test plugins there (-nri-socket).
func nriSocket(dir string) string { return filepath.Join(dir, "nri.sock") }

// cleanup removes the pods failing specs leave and the host shared-memory
// segments the HostIpc specs create with ipcmk and never delete.
func cleanup(d *testenv.Husk, shmBefore map[string]bool) {
	d.RemovePods()
	for id := range shmIDs() {
		if !shmBefore[id] {
			if err := exec.Command("ipcrm", "-m", id).Run(); err != nil && !errors.Is(err, exec.ErrNotFound) {
				fmt.Fprintln(os.Stderr, "cleanup: ipcrm -m", id, err)
			}
		}
	}
}

// shmIDs lists the host's System V shared memory segment ids.
func shmIDs() map[string]bool {
	ids := map[string]bool{}
	data, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		return ids
	}
	for i, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if i == 0 || len(f) < 2 {
			continue
		}
		ids[f[1]] = true
	}
	return ids
}
