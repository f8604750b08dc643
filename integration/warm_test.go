package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/husk-runtime/husk/integration/testenv"
)

// warmHelpersOf lists the waiting husk-oci helpers of pod id's shim
// (`husk-oci serve ... --pod <id>`).
func warmHelpersOf(id string) []int {
	return testenv.PidsOf("husk-oci", func(cmdline string) bool {
		return strings.Contains(cmdline, "\x00serve\x00") && strings.Contains(cmdline, "\x00"+id)
	})
}

// A pod's infra run and its first container's create are given to warm
// husk-oci helpers (shim/warm.go), and a helper no call comes for leaves
// after its idle time: none outlives it or its shim.
func TestWarmHelpers(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	pull(t, d, ref)

	pod := podConfig("warm")
	podID := runPod(t, d, pod)
	runContainer(t, d, podID, pod, ctrConfig("c", ref, "sleep", "3600"))
	log, err := os.ReadFile(filepath.Join(d.Root, "pods", podID, "shim.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"run", "create"} {
		warm := false
		for _, l := range strings.Split(string(log), "\n") {
			if strings.Contains(l, `msg="husk-oci call"`) && strings.Contains(l, " cmd="+cmd+" ") && strings.Contains(l, "warm=true") {
				warm = true
			}
		}
		if !warm {
			t.Errorf("husk-oci %s did not go to a warm helper; shim log:\n%s", cmd, log)
		}
	}

	idle := runPod(t, d, podConfig("idle"))
	waitFor(t, 10*time.Second, "a warm helper for the idle pod's first create", func() bool {
		return len(warmHelpersOf(idle)) == 1
	})
	// Its idle time is 3 s.
	waitFor(t, 10*time.Second, "the idle pod's warm helper to leave", func() bool {
		return len(warmHelpersOf(idle)) == 0
	})
	removePod(t, d, idle)
	removePod(t, d, podID)
}
