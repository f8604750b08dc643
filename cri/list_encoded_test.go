package cri

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestEncodedList(t *testing.T) {
	var s Server
	codec := s.Codec()
	state := runtimeapi.ContainerState_CONTAINER_RUNNING
	builds := 0
	build := func() *runtimeapi.ListContainersResponse {
		builds++
		return &runtimeapi.ListContainersResponse{Containers: []*runtimeapi.Container{{Id: "c1", State: state, Labels: map[string]string{"a": "b"}}}}
	}
	first := s.lists.ctrs.get(1, build)
	if again := s.lists.ctrs.get(1, build); again != first || builds != 1 {
		t.Fatalf("same generation: built %d times, same answer %v", builds, again == first)
	}
	// Sent as the bytes stored, which are the answer's encoding.
	got, err := codec.Marshal(first)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := proto.Marshal(first)
	if !bytes.Equal(got.Materialize(), want) {
		t.Fatal("pre-encoded answer: bytes differ from its encoding")
	}
	var back runtimeapi.ListContainersResponse
	if err := proto.Unmarshal(got.Materialize(), &back); err != nil || back.Containers[0].State != state {
		t.Fatalf("pre-encoded answer decodes to %v, %v", back.Containers, err)
	}

	// A change moves the generation: the next answer is built anew and
	// says what changed, and the codec sends it, not the old bytes.
	state = runtimeapi.ContainerState_CONTAINER_EXITED
	next := s.lists.ctrs.get(2, build)
	if builds != 2 || next.Containers[0].State != state {
		t.Fatalf("after a change: built %d times, state %v", builds, next.Containers[0].State)
	}
	got, err = codec.Marshal(next)
	if err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(got.Materialize(), &back); err != nil || back.Containers[0].State != state {
		t.Fatalf("new answer decodes to %v, %v", back.Containers, err)
	}
	// An older generation read before the change is answered with the newer
	// answer, never the other way round.
	if old := s.lists.ctrs.get(1, build); old != next || builds != 2 {
		t.Fatalf("a stale generation: built %d times, newest answer %v", builds, old == next)
	}

	// The answer replaced while in flight, and any other message, is
	// encoded as usual.
	got, err = codec.Marshal(first)
	if err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(got.Materialize(), &back); err != nil || back.Containers[0].State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("replaced answer decodes to %v, %v", back.Containers, err)
	}
	other := &runtimeapi.ListPodSandboxResponse{Items: []*runtimeapi.PodSandbox{{Id: "p1"}}}
	got, err = codec.Marshal(other)
	if err != nil {
		t.Fatal(err)
	}
	want, _ = proto.Marshal(other)
	if !bytes.Equal(got.Materialize(), want) {
		t.Fatal("a message the cache never held: bytes differ from its encoding")
	}
	if codec.Name() != "proto" {
		t.Fatalf("codec name %q: clients would see another content subtype", codec.Name())
	}
}
