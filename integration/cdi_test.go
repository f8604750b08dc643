package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestCDIDevice asks for a CDI device, as a device plugin or DRA driver
// would have kubelet do: its spec's edits (a device node, an env var) are
// in the container; an unknown device is refused by name.
func TestCDIDevice(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	pull(t, d, ref)
	spec := `{"cdiVersion":"0.6.0","kind":"husk.test/dev","devices":[{"name":"null",
	  "containerEdits":{"deviceNodes":[{"path":"/dev/husk-null","hostPath":"/dev/null"}],"env":["HUSK_CDI=yes"]}}]}`
	if err := os.WriteFile(filepath.Join(d.CDIDir, "husk-test.json"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, time.Minute)
	pod := podConfig("cdi")
	podID := runPod(t, d, pod)
	cc := ctrConfig("gpu", ref, "sleep", "3600")
	cc.CDIDevices = []*runtimeapi.CDIDevice{{Name: "husk.test/dev=null"}}
	c := runContainer(t, d, podID, pod, cc)
	if got := strings.TrimSpace(execOut(t, d, c, "sh", "-c", "echo $HUSK_CDI; test -c /dev/husk-null && echo node; echo hi > /dev/husk-null && echo writable")); got != "yes\nnode\nwritable" {
		t.Errorf("CDI edits in the container: %q", got)
	}
	bad := ctrConfig("nogpu", ref, "true")
	bad.CDIDevices = []*runtimeapi.CDIDevice{{Name: "husk.test/dev=missing"}}
	_, err := d.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: bad, SandboxConfig: pod})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "husk.test/dev=missing") {
		t.Errorf("unknown CDI device: %v", err)
	}
	if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, d, podID)
	assertDaemonClean(t, d)
}
