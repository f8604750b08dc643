package criclient

import (
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestPick(t *testing.T) {
	pods := []*runtimeapi.PodSandbox{
		{Id: "aaa111", Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default"}, State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY, CreatedAt: 3},
		{Id: "aaa222", Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default"}, State: runtimeapi.PodSandboxState_SANDBOX_READY, CreatedAt: 1},
		{Id: "bbb333", Metadata: &runtimeapi.PodSandboxMetadata{Name: "db", Namespace: "prod"}},
		{Id: "ccc444", Metadata: &runtimeapi.PodSandboxMetadata{Name: "db", Namespace: "test"}},
	}
	for ref, want := range map[string]string{"aaa111": "aaa111", "aaa2": "aaa222", "web": "aaa222", "default/web": "aaa222", "test/db": "ccc444", "b": "bbb333"} {
		p, err := PickPod(pods, ref)
		if err != nil || p.Id != want {
			t.Errorf("PickPod(%q) = %v, %v; want %s", ref, p.GetId(), err, want)
		}
	}
	for _, ref := range []string{"aaa", "db", "nope"} {
		if p, err := PickPod(pods, ref); err == nil {
			t.Errorf("PickPod(%q) = %s, want an error", ref, p.Id)
		}
	}

	ctrs := []*runtimeapi.Container{
		{Id: "c1", PodSandboxId: "aaa222", Metadata: &runtimeapi.ContainerMetadata{Name: "app", Attempt: 0}, State: runtimeapi.ContainerState_CONTAINER_EXITED, CreatedAt: 1},
		{Id: "c2", PodSandboxId: "aaa222", Metadata: &runtimeapi.ContainerMetadata{Name: "app", Attempt: 1}, State: runtimeapi.ContainerState_CONTAINER_RUNNING, CreatedAt: 2},
		{Id: "d1", PodSandboxId: "bbb333", Metadata: &runtimeapi.ContainerMetadata{Name: "side"}, State: runtimeapi.ContainerState_CONTAINER_RUNNING},
		{Id: "d2", PodSandboxId: "ccc444", Metadata: &runtimeapi.ContainerMetadata{Name: "side"}, State: runtimeapi.ContainerState_CONTAINER_RUNNING},
	}
	for ref, want := range map[string]string{"app": "c2", "c1": "c1", "web/app": "c2"} {
		ct, err := PickContainer(ctrs, pods, ref)
		if err != nil || ct.Id != want {
			t.Errorf("PickContainer(%q) = %v, %v; want %s", ref, ct.GetId(), err, want)
		}
	}
	if ct, err := PickContainer(ctrs, pods, "side"); err == nil || !strings.Contains(err.Error(), "several pods") {
		t.Errorf("PickContainer(side) = %v, %v; want an ambiguity error", ct.GetId(), err)
	}
	if ct, err := PickContainer(ctrs, pods, "c"); err == nil {
		t.Errorf("PickContainer(c) = %v: an ambiguous prefix", ct.Id)
	}
}
