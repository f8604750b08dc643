package integration

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestBadRequests sends what a confused client might: each gets the right
// gRPC code and a message naming the problem, the daemon keeps serving and
// nothing half-made is left.
func TestBadRequests(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	ctx := ctxT(t, 2*time.Minute)
	pull(t, d, ref)

	expect := func(what string, err error, code codes.Code, words ...string) {
		t.Helper()
		st, _ := status.FromError(err)
		if st.Code() != code {
			t.Errorf("%s: code %v (%q), want %v", what, st.Code(), st.Message(), code)
			return
		}
		for _, w := range words {
			if !strings.Contains(st.Message(), w) {
				t.Errorf("%s: message %q does not name %q", what, st.Message(), w)
			}
		}
	}

	_, err := d.RT.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{}})
	expect("pod without metadata", err, codes.InvalidArgument, "metadata")
	_, err = d.RT.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "x", Namespace: "y"}}})
	expect("pod without uid", err, codes.InvalidArgument, "uid")
	_, err = d.RT.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: "feedface"})
	expect("status of unknown pod", err, codes.NotFound, "feedface")
	_, err = d.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: "deadbeef"})
	expect("status of unknown container", err, codes.NotFound, "deadbeef")
	_, err = d.Img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "UPPER/Case::bad"}})
	expect("invalid image reference", err, codes.InvalidArgument, "UPPER/Case::bad")
	_, err = d.Img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: shared.registry.Addr + "/test/missing:1"}})
	expect("unknown image in the registry", err, codes.NotFound, "test/missing")

	// CRI idempotence: stop and remove of unknown ids succeed.
	if _, err := d.RT.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: "0123456789ab"}); err != nil {
		t.Errorf("StopPodSandbox of an unknown id: %v", err)
	}
	if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: "0123456789ab"}); err != nil {
		t.Errorf("RemovePodSandbox of an unknown id: %v", err)
	}
	if _, err := d.RT.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: "0123456789ab"}); err != nil {
		t.Errorf("StopContainer of an unknown id: %v", err)
	}
	if _, err := d.RT.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: "0123456789ab"}); err != nil {
		t.Errorf("RemoveContainer of an unknown id: %v", err)
	}

	pod := podConfig("dup")
	podID := runPod(t, d, pod)
	// kubelet retrying the same request (its call timed out) gets the same
	// sandbox; the same name with another config, or a new attempt while
	// the first still runs, is refused.
	if retry := runPod(t, d, pod); retry != podID {
		t.Errorf("retried RunPodSandbox made %s, want the existing %s", retry, podID)
	}
	other := podConfig("dup")
	other.Metadata.Uid = pod.Metadata.Uid
	other.Hostname = "elsewhere"
	_, err = d.RT.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: other})
	expect("second pod, same attempt, other config", err, codes.AlreadyExists, pod.Metadata.Name, podID)
	again := podConfig("dup")
	again.Metadata.Uid = pod.Metadata.Uid
	again.Metadata.Attempt = 1
	_, err = d.RT.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: again})
	expect("second pod, other attempt", err, codes.AlreadyExists, pod.Metadata.Name, podID)

	_, err = d.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: ctrConfig("c", "127.0.0.1:1/nope/never:1", "true"), SandboxConfig: pod})
	expect("container of an unknown image", err, codes.NotFound, "nope/never")
	_, err = d.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: &runtimeapi.ContainerConfig{Image: &runtimeapi.ImageSpec{Image: ref}}, SandboxConfig: pod})
	expect("container without metadata", err, codes.InvalidArgument, "metadata")
	_, err = d.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: "abcdef99", Config: ctrConfig("c", ref, "true"), SandboxConfig: pod})
	expect("container in an unknown pod", err, codes.NotFound, "abcdef99")

	c1cfg := ctrConfig("c", ref, "sleep", "3600")
	c1 := runContainer(t, d, podID, pod, c1cfg)
	if retry, err := d.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: c1cfg, SandboxConfig: pod}); err != nil || retry.ContainerId != c1 {
		t.Errorf("retried CreateContainer: %v, id %s, want the existing %s", err, retry.GetContainerId(), c1)
	}
	_, err = d.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: ctrConfig("c", ref, "true"), SandboxConfig: pod})
	expect("second container with the same name, other config", err, codes.AlreadyExists, `"c"`)
	_, err = d.RT.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c1})
	expect("start of a running container", err, codes.FailedPrecondition, c1)

	// A command the image does not have: the container cannot be made, and
	// the caller is told which command is missing (kubelet shows it as the
	// container's reason). Whether create or start says so is the
	// runtime's choice (libcontainer looks the command up in create).
	for _, cmd := range []string{"/no/such/command", "no-such-command"} {
		cfg := ctrConfig("missing-"+strings.Trim(cmd, "/"), ref, cmd)
		cfg.Metadata.Name = strings.ReplaceAll(cfg.Metadata.Name, "/", "-")
		cr, err := d.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pod})
		if err == nil {
			_, err = d.RT.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId})
			if _, rerr := d.RT.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: cr.ContainerId}); rerr != nil {
				t.Errorf("remove of the container with a missing command: %v", rerr)
			}
		}
		expect("command missing in the image: "+cmd, err, codes.NotFound, cmd)
	}
	// A registry nothing listens on.
	_, err = d.Img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "127.0.0.1:1/nope/never:1"}})
	expect("pull from a registry nothing listens on", err, codes.Unavailable, "127.0.0.1:1")

	if _, err := d.RT.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	_, err = d.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: ctrConfig("late", ref, "true"), SandboxConfig: pod})
	expect("container in a stopped pod", err, codes.FailedPrecondition, podID, "not ready")
	_, err = d.RT.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: c1, Cmd: []string{"true"}})
	expect("exec in a stopped container", err, codes.FailedPrecondition, c1)

	// Nothing half-made: the failed creates left no container behind, and
	// the daemon still serves.
	list, err := d.RT.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: podID}})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Containers) != 1 || list.Containers[0].Id != c1 {
		t.Fatalf("containers after the failed creates: %v", list.Containers)
	}
	pods, err := d.RT.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods after the failed runs: %v, %v", err, pods.GetItems())
	}
	if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, d, podID)
	assertDaemonClean(t, d)
}
