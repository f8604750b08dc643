package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criuAnswer is what the checkpoint RPCs must answer a valid request with
// on this machine, found here independently of husk: FailedPrecondition
// naming the missing binary or what `criu check` reports, or Unimplemented
// where CRIU works (the checkpoint itself is not built).
func criuAnswer(t *testing.T) (codes.Code, string) {
	t.Helper()
	if _, err := exec.LookPath("criu"); err != nil {
		return codes.FailedPrecondition, "criu is not installed"
	}
	out, err := exec.Command("criu", "check").CombinedOutput()
	t.Logf("criu check on this machine: %v\n%s", err, out)
	if err == nil {
		return codes.Unimplemented, "not built"
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "Error") {
			return codes.FailedPrecondition, strings.TrimSpace(l)
		}
	}
	return codes.FailedPrecondition, "criu check"
}

// TestCheckpointRPCs checks CheckpointContainer, CheckpointPod and
// RestorePod: what is wrong with the request is InvalidArgument naming the
// field, an unknown container NotFound, one not running FailedPrecondition,
// and a valid request gets this node's CRIU answer.
func TestCheckpointRPCs(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	pull(t, d, ref)
	ctx := ctxT(t, 2*time.Minute)
	wantCode, wantMsg := criuAnswer(t)

	pod := podConfig("checkpoint")
	podID := runPod(t, d, pod)
	running := runContainer(t, d, podID, pod, ctrConfig("running", ref, "sleep", "3600"))
	cr, err := d.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: ctrConfig("created", ref, "sleep", "1"), SandboxConfig: pod})
	if err != nil {
		t.Fatal(err)
	}
	created := cr.ContainerId
	other := podConfig("checkpoint-other")
	otherID := runPod(t, d, other)
	stranger := runContainer(t, d, otherID, other, ctrConfig("stranger", ref, "sleep", "3600"))

	out := t.TempDir()
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(t.TempDir(), "c.tar")
	expect := func(what string, err error, code codes.Code, msg string) {
		t.Helper()
		st, _ := status.FromError(err)
		if st.Code() != code || !strings.Contains(st.Message(), msg) {
			t.Errorf("%s: %v (%v), want %v containing %q", what, st.Message(), st.Code(), code, msg)
		}
	}

	_, err = d.RT.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{Location: ckpt})
	expect("CheckpointContainer without an id", err, codes.InvalidArgument, "container_id")
	_, err = d.RT.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: running, Location: "c.tar"})
	expect("CheckpointContainer to a relative location", err, codes.InvalidArgument, "location")
	_, err = d.RT.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: "feedbeef", Location: ckpt})
	expect("CheckpointContainer of an unknown container", err, codes.NotFound, "feedbeef")
	_, err = d.RT.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: created, Location: ckpt})
	expect("CheckpointContainer of a created container", err, codes.FailedPrecondition, "only a running container")
	_, err = d.RT.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: running, Location: ckpt})
	expect("CheckpointContainer of a running container", err, wantCode, wantMsg)
	t.Logf("CheckpointContainer of a running container: %v", err)

	cp := func(r *runtimeapi.CheckpointPodRequest) error {
		_, err := d.RT.CheckpointPod(ctx, r)
		return err
	}
	expect("CheckpointPod without containers", cp(&runtimeapi.CheckpointPodRequest{PodSandboxId: podID, OutputPath: out}),
		codes.InvalidArgument, "container_ids")
	expect("CheckpointPod naming one twice", cp(&runtimeapi.CheckpointPodRequest{PodSandboxId: podID, OutputPath: out, ContainerIds: []string{running, running}}),
		codes.InvalidArgument, "twice")
	expect("CheckpointPod into a dir not empty", cp(&runtimeapi.CheckpointPodRequest{PodSandboxId: podID, OutputPath: full, ContainerIds: []string{running}}),
		codes.InvalidArgument, "output_path")
	expect("CheckpointPod with options", cp(&runtimeapi.CheckpointPodRequest{PodSandboxId: podID, OutputPath: out, ContainerIds: []string{running}, Options: map[string]string{"tcp-established": "true"}}),
		codes.InvalidArgument, "tcp-established")
	expect("CheckpointPod of an unknown pod", cp(&runtimeapi.CheckpointPodRequest{PodSandboxId: "feedbeef", OutputPath: out, ContainerIds: []string{running}}),
		codes.NotFound, "feedbeef")
	expect("CheckpointPod naming another pod's container", cp(&runtimeapi.CheckpointPodRequest{PodSandboxId: podID, OutputPath: out, ContainerIds: []string{running, stranger}}),
		codes.InvalidArgument, "container_ids")
	expect("CheckpointPod naming a created container", cp(&runtimeapi.CheckpointPodRequest{PodSandboxId: podID, OutputPath: out, ContainerIds: []string{running, created}}),
		codes.FailedPrecondition, "only running containers")
	expect("CheckpointPod of a running pod", cp(&runtimeapi.CheckpointPodRequest{PodSandboxId: podID, OutputPath: out, ContainerIds: []string{running}}),
		wantCode, wantMsg)
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("CheckpointPod that failed left %d entries in output_path", len(ents))
	}

	rp := func(r *runtimeapi.RestorePodRequest) error {
		_, err := d.RT.RestorePod(ctx, r)
		return err
	}
	restored := podConfig("restored")
	cfgs := []*runtimeapi.ContainerConfig{ctrConfig("running", ref, "sleep", "3600")}
	expect("RestorePod from a relative path", rp(&runtimeapi.RestorePodRequest{CheckpointPath: "ckpt", Config: restored, ContainerConfigs: cfgs}),
		codes.InvalidArgument, "checkpoint_path")
	expect("RestorePod without container configs", rp(&runtimeapi.RestorePodRequest{CheckpointPath: out, Config: restored}),
		codes.InvalidArgument, "container_configs")
	expect("RestorePod with an unknown handler", rp(&runtimeapi.RestorePodRequest{CheckpointPath: out, Config: restored, ContainerConfigs: cfgs, RuntimeHandler: "nope"}),
		codes.InvalidArgument, `"nope"`)
	expect("RestorePod", rp(&runtimeapi.RestorePodRequest{CheckpointPath: out, Config: restored, ContainerConfigs: cfgs}), wantCode, wantMsg)

	for _, id := range []string{podID, otherID} {
		if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatal(err)
		}
		assertPodGone(t, d, id)
	}
}
