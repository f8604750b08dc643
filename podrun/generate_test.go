package podrun

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/husk-runtime/husk/kubepod"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// generatePod is a pod with an init container, an app and an emptyDir
// whose fsGroup is the test's own group (which a non-root user may give
// a directory).
func generatePod() *corev1.Pod {
	pod := testPod(corev1.RestartPolicyOnFailure, "app")
	gid := int64(os.Getgid())
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: &gid, SupplementalGroups: []int64{4000}}
	pod.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	pod.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox:1.36", Command: []string{"true"}}}
	pod.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", Value: "b"}}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	return pod
}

func planConfigs(p *kubepod.Plan) []*runtimeapi.ContainerConfig {
	var out []*runtimeapi.ContainerConfig
	for _, c := range append(append([]kubepod.Container{}, p.InitContainers...), p.Containers...) {
		out = append(out, c.Config(0, ""))
	}
	return out
}

// Configs reads back the configs husk pod run recorded (newRecord), and
// GenerateOptions what it left on disk: Generate makes of them a Pod that
// translates to the same configs.
func TestConfigsFromRecord(t *testing.T) {
	f := newFake()
	f.exitAtStart["init"] = 0
	r, p, err := start(t, f, generatePod())
	if err != nil {
		t.Fatal(err)
	}
	sb, ctrs, err := r.Configs(context.Background(), p.ID, p.Plan.UID)
	if err != nil {
		t.Fatalf("Configs: %v", err)
	}
	if !proto.Equal(sb, p.Plan.Sandbox) {
		t.Errorf("sandbox config %v, want %v", prototext.Format(sb), prototext.Format(p.Plan.Sandbox))
	}
	want := planConfigs(p.Plan)
	if len(ctrs) != len(want) {
		t.Fatalf("%d containers, want %d", len(ctrs), len(want))
	}
	for i, c := range ctrs {
		if !proto.Equal(c.Config, want[i]) {
			t.Errorf("container %d config %v, want %v", i, prototext.Format(c.Config), prototext.Format(want[i]))
		}
	}
	if ctrs[0].Kind != "init" || ctrs[0].Image != "busybox:1.36" || ctrs[1].Kind != "app" || ctrs[1].Image != "busybox" {
		t.Errorf("containers %s %s, %s %s; want init busybox:1.36, app busybox", ctrs[0].Kind, ctrs[0].Image, ctrs[1].Kind, ctrs[1].Image)
	}

	o, err := r.GenerateOptions(p.Plan.UID)
	if err != nil {
		t.Fatalf("GenerateOptions: %v", err)
	}
	if o.FSGroup == nil || *o.FSGroup != int64(os.Getgid()) {
		t.Errorf("fsGroup %v of the volume dirs, want %d", o.FSGroup, os.Getgid())
	}
	pod, notes, err := kubepod.Generate(sb, ctrs, o)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	again, err := kubepod.Translate(pod, kubepod.Options{
		UID: p.Plan.UID, LogRoot: r.LogRoot, VolumeDir: o.VolumeDir, HostDNS: &runtimeapi.DNSConfig{},
		MemoryCapacity: o.MemoryCapacity, SeccompRoot: seccompRoot, SeccompRuntimeDefault: true,
	})
	if err != nil {
		t.Fatalf("Translate of the generated pod: %v", err)
	}
	if !proto.Equal(again.Sandbox, p.Plan.Sandbox) {
		t.Errorf("generated pod's sandbox %v, want %v", prototext.Format(again.Sandbox), prototext.Format(p.Plan.Sandbox))
	}
	for i, c := range planConfigs(again) {
		if !proto.Equal(c, want[i]) {
			t.Errorf("generated pod's container %d: %v, want %v", i, prototext.Format(c), prototext.Format(want[i]))
		}
	}
	if again.FSGroup == nil || *again.FSGroup != int64(os.Getgid()) || again.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Errorf("generated pod: fsGroup %v, restart policy %s", again.FSGroup, again.RestartPolicy)
	}
	t.Logf("notes: %q", notes)
}

// A record naming another sandbox is not taken for the pod's.
func TestConfigsRecordOfAnotherSandbox(t *testing.T) {
	f := newFake()
	r, p, err := start(t, f, testPod(corev1.RestartPolicyAlways, "app"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Configs(context.Background(), "other", p.Plan.UID); err == nil || !strings.Contains(err.Error(), "names sandbox") {
		t.Errorf("Configs of another sandbox: %v", err)
	}
}

// verboseCRI reports configs in its verbose statuses as containerd does:
// the "config" of the JSON "info", encoding/json of the CRI's Go structs.
type verboseCRI struct {
	*fakeCRI
	sandbox    *runtimeapi.PodSandboxConfig
	containers []*runtimeapi.Container
	configs    map[string]*runtimeapi.ContainerConfig // by container id
}

func TestConfigsFromVerboseStatus(t *testing.T) {
	f := newFake()
	f.exitAtStart["init"] = 0
	// The plan of a pod husk pod run did not record: its configs are
	// what the runtime reports.
	_, p, err := start(t, f, generatePod())
	if err != nil {
		t.Fatal(err)
	}
	cfgs := planConfigs(p.Plan)
	v := &verboseCRI{fakeCRI: newFake(), sandbox: p.Plan.Sandbox, configs: map[string]*runtimeapi.ContainerConfig{}}
	// Listed apps first, init containers' attempts out of order: the
	// order is the first attempts' creation.
	for i, c := range []struct {
		id      string
		cfg     *runtimeapi.ContainerConfig
		attempt uint32
		created int64
	}{{"app-1", cfgs[1], 1, 300}, {"init-0", cfgs[0], 0, 100}, {"app-0", cfgs[1], 0, 200}} {
		cfg := proto.Clone(c.cfg).(*runtimeapi.ContainerConfig)
		cfg.Metadata.Attempt = c.attempt
		// kubelet's containers carry no husk labels: one without is an
		// app container.
		if i == 0 {
			delete(cfg.Labels, kubepod.LabelContainerKind)
		}
		v.configs[c.id] = cfg
		v.containers = append(v.containers, &runtimeapi.Container{Id: c.id, PodSandboxId: "pod1", Metadata: cfg.Metadata, CreatedAt: c.created,
			Image: &runtimeapi.ImageSpec{Image: "sha256:img"}})
	}
	r := &Runner{Runtime: v, Images: v, StateDir: t.TempDir(), Stderr: &strings.Builder{}}
	sb, ctrs, err := r.Configs(context.Background(), "pod1", "not-recorded")
	if err != nil {
		t.Fatalf("Configs: %v", err)
	}
	if !proto.Equal(sb, p.Plan.Sandbox) {
		t.Errorf("sandbox config %v, want %v", prototext.Format(sb), prototext.Format(p.Plan.Sandbox))
	}
	if len(ctrs) != 2 || ctrs[0].Config.Metadata.Name != "init" || ctrs[0].Kind != "init" || ctrs[1].Config.Metadata.Attempt != 1 || ctrs[1].Kind != "app" {
		t.Fatalf("containers %v, want init then app's attempt 1", ctrs)
	}
	if !proto.Equal(ctrs[0].Config, cfgs[0]) || ctrs[0].Image != "busybox:1.36" {
		t.Errorf("init config %v (image %s), want %v", prototext.Format(ctrs[0].Config), ctrs[0].Image, prototext.Format(cfgs[0]))
	}
}

func (v *verboseCRI) PodSandboxStatus(_ context.Context, in *runtimeapi.PodSandboxStatusRequest, _ ...grpc.CallOption) (*runtimeapi.PodSandboxStatusResponse, error) {
	resp := &runtimeapi.PodSandboxStatusResponse{Status: &runtimeapi.PodSandboxStatus{Id: in.PodSandboxId, Metadata: v.sandbox.Metadata}}
	if in.Verbose {
		b, _ := json.Marshal(map[string]any{"config": v.sandbox})
		resp.Info = map[string]string{"info": string(b)}
	}
	return resp, nil
}

func (v *verboseCRI) ListContainers(context.Context, *runtimeapi.ListContainersRequest, ...grpc.CallOption) (*runtimeapi.ListContainersResponse, error) {
	return &runtimeapi.ListContainersResponse{Containers: v.containers}, nil
}

func (v *verboseCRI) ContainerStatus(_ context.Context, in *runtimeapi.ContainerStatusRequest, _ ...grpc.CallOption) (*runtimeapi.ContainerStatusResponse, error) {
	resp := &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{Id: in.ContainerId}}
	if in.Verbose {
		b, _ := json.Marshal(map[string]any{"config": v.configs[in.ContainerId]})
		resp.Info = map[string]string{"info": string(b)}
	}
	return resp, nil
}

// Without a record, and with a runtime that reports no configs (husk's
// daemon reports only a container's stdio settings), Configs says so.
func TestConfigsNotRecorded(t *testing.T) {
	f := newFake()
	r := &Runner{Runtime: f, Images: f, StateDir: t.TempDir(), Stderr: &strings.Builder{}}
	if _, _, err := r.Configs(context.Background(), "pod1", "not-recorded"); err == nil || !strings.Contains(err.Error(), "not started by husk pod run") ||
		!strings.Contains(err.Error(), "does not report its configs") {
		t.Errorf("Configs of a pod without record: %v", err)
	}
	// A sandbox config but only stdio of its container, as husk's daemon
	// reports it.
	v := &verboseCRI{fakeCRI: f, sandbox: &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default"}},
		containers: []*runtimeapi.Container{{Id: "c1", Metadata: &runtimeapi.ContainerMetadata{Name: "app"}}},
		configs:    map[string]*runtimeapi.ContainerConfig{"c1": {Stdin: true}}}
	r.Runtime = v
	if _, _, err := r.Configs(context.Background(), "pod1", ""); err == nil || !strings.Contains(err.Error(), "config of its container app") {
		t.Errorf("Configs with a container's stdio only: %v", err)
	}
}

func TestTmpfsSize(t *testing.T) {
	for opts, want := range map[string]int64{
		"rw,size=65536k,mode=777": 64 << 20, "rw,size=2g": 2 << 30, "rw,size=1048576": 1 << 20, "rw,mode=777": 0, "size=bad": 0,
	} {
		if got := tmpfsSize(opts); got != want {
			t.Errorf("tmpfsSize(%q) = %d, want %d", opts, got, want)
		}
	}
}
