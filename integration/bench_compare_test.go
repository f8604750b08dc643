package integration

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// BenchmarkCompare runs `husk bench` against husk, the newest containerd
// (2.4, `make containerd2`) and Debian's containerd 1.6 in one run,
// interleaved, each isolated with the test registry's images: what `make
// bench-compare` prints. The bench's flags come from HUSK_BENCH_ARGS
// (default: 20 sequential pods, 48 at concurrency 8, 500 pods for the lists
// and stats with memory read at 100). Figures, no asserts: the table goes
// to stdout. Each runtime gets a /22, as 500 pods need more than a /24,
// and the same bridge network without ipMasq (testenv.BridgeConflist says
// why). Ctrl-C (or SIGTERM) is passed to husk bench, which removes its
// pods, and the runtimes are then stopped and cleaned up as after any
// test, rather than left running by a test binary killed outright.
func BenchmarkCompare(b *testing.B) {
	ref := busyboxRef(b)
	net := 200 + os.Getpid()%50
	// HUSK_BENCH_RUNTIMES picks some of the three (comma-separated), to
	// iterate on one runtime's figures; the comparison needs them all.
	runtimes := map[string]bool{"husk": true, "containerd2": true, "containerd": true}
	if v := os.Getenv("HUSK_BENCH_RUNTIMES"); v != "" {
		runtimes = map[string]bool{}
		for _, r := range strings.Split(v, ",") {
			runtimes[strings.TrimSpace(r)] = true
		}
	}
	var endpoints []string
	if runtimes["husk"] {
		d := StartDaemonWith(b, DaemonOptions{Subnet: fmt.Sprintf("10.%d.0.0/22", net), NoMasquerade: true})
		endpoints = append(endpoints, "--endpoint", "husk=unix://"+d.Socket)
	}
	if runtimes["containerd2"] {
		ctrd2 := StartContainerdWith(b, ContainerdOptions{Newest: true, Subnet: fmt.Sprintf("10.%d.4.0/22", net), NoMasquerade: true})
		endpoints = append(endpoints, "--endpoint", "containerd2="+ctrd2.Endpoint())
	}
	if runtimes["containerd"] {
		ctrd := StartContainerdWith(b, ContainerdOptions{Subnet: fmt.Sprintf("10.%d.8.0/22", net), NoMasquerade: true})
		endpoints = append(endpoints, "--endpoint", "containerd="+ctrd.Endpoint())
	}
	if len(endpoints) == 0 {
		b.Fatalf("HUSK_BENCH_RUNTIMES=%q names none of husk, containerd2, containerd", os.Getenv("HUSK_BENCH_RUNTIMES"))
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	args := strings.Fields(os.Getenv("HUSK_BENCH_ARGS"))
	if len(args) == 0 {
		args = strings.Fields("--pods 20 --concurrent-pods 48 --concurrency 8 --list-containers 500 --memory-pods 100 --list-calls 100 --stats-calls 20 --settle 5s")
	}
	args = append(append([]string{"bench", "--image", ref, "--command", "sleep 3600"}, endpoints...), args...)
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(filepath.Join(binDir(b), "husk"), args...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		// Its own process group: a Ctrl-C reaches it only through here.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var err error
	wait:
		for {
			select {
			case sig := <-sigs:
				_ = cmd.Process.Signal(sig)
			case err = <-done:
				break wait
			}
		}
		if err != nil {
			b.Fatalf("husk %s: %v", strings.Join(args, " "), err)
		}
	}
}
