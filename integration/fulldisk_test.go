package integration

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The daemon's root on a 64 MB tmpfs that the test fills up: a pull, a pod
// and a container create each fail with ResourceExhausted naming a path
// under the root; no record is left half-written (every record parses, no
// temp file stays); the pod that ran keeps running; once space returns the
// same three calls succeed, and at the end nothing is left.
func TestFullDisk(t *testing.T) {
	d := StartDaemonWith(t, DaemonOptions{RootSizeMB: 64})
	ref := busyboxRef(t)
	pull(t, d, ref)
	// An image the daemon does not have yet: busybox and 4 MB more.
	bigRef := strings.SplitN(ref, "/", 2)[0] + "/husk-test/fulldisk:1"
	pushWith(t, bigImage(t, 1, 4<<20), bigRef, authn.Anonymous)

	pod := podConfig("before")
	podID := runPod(t, d, pod)
	ctrID := runContainer(t, d, podID, pod, ctrConfig("c", ref, "sleep", "600"))

	// Fill the root to its last byte.
	filler := filepath.Join(d.Root, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	for {
		if _, err := f.Write(chunk[:512]); err != nil {
			break
		}
	}
	f.Close()

	ctx := ctxT(t, 2*time.Minute)
	expectFull := func(what string, err error) {
		t.Helper()
		st, _ := status.FromError(err)
		t.Logf("%s on a full disk: %v: %s", what, st.Code(), st.Message())
		if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), d.Root) {
			t.Errorf("%s on a full disk: %v %q, want ResourceExhausted naming a path under %s", what, st.Code(), st.Message(), d.Root)
		}
	}
	_, err = d.Img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: bigRef}})
	expectFull("PullImage", err)
	_, err = d.RT.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podConfig("full")})
	expectFull("RunPodSandbox", err)
	_, err = d.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: ctrConfig("more", ref, "sleep", "600"), SandboxConfig: pod})
	expectFull("CreateContainer", err)
	checkRecords(t, d.Root)
	if st, err := d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ctrID}); err != nil ||
		st.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("the running container on a full disk: %v %v", err, st)
	}
	if pl, err := d.RT.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err != nil || len(pl.Items) != 1 {
		t.Fatalf("pods on a full disk: %v %v; want the one that ran", err, pl)
	}

	// Space returns: everything works again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: bigRef}}); err != nil {
		t.Errorf("PullImage once space returned: %v", err)
	}
	pod2 := podConfig("after")
	pod2ID := runPod(t, d, pod2)
	runContainer(t, d, podID, pod, ctrConfig("more", ref, "sleep", "600"))
	checkRecords(t, d.Root)
	removePod(t, d, pod2ID)
	removePod(t, d, podID)
	assertDaemonClean(t, d)
}

// checkRecords: every pod and container record under root parses, and no
// temp file of an atomic write is left.
func checkRecords(t *testing.T, root string) {
	t.Helper()
	_ = filepath.WalkDir(filepath.Join(root, "pods"), func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if e.IsDir() && (e.Name() == "rootfs" || e.Name() == "upper" || e.Name() == "work") {
			return filepath.SkipDir
		}
		switch {
		case strings.HasPrefix(e.Name(), ".tmp-"):
			t.Errorf("temp file of a record write left: %s", p)
		case e.Name() == "pod.json" || e.Name() == "container.json":
			b, err := os.ReadFile(p)
			if err != nil || !json.Valid(b) {
				t.Errorf("record %s half-written: %v %q", p, err, b)
			}
		}
		return nil
	})
}
