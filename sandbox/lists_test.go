package sandbox

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/husk-runtime/husk/atomicfile"
	"github.com/husk-runtime/husk/shim"
)

// The list and status calls answer from memory: an exit file the shim has
// written but not yet reported is not read by them, and the exit the
// shim's Wait reports (after a Wait that failed, which the watcher tries
// again) is what they then show.
func TestListsAnswerFromMemory(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	pod, err := w.m.RunPodSandbox(ctx, podConfig("web"), "")
	if err != nil {
		t.Fatal(err)
	}
	id, err := w.m.CreateContainer(ctx, pod, ctrConfig("app"), podConfig("web"))
	if err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	s := w.shims[w.m.paths.ShimSocket(pod)]
	w.mu.Unlock()
	s.mu.Lock()
	s.failWaits = 1 // the watcher's first Wait
	s.mu.Unlock()
	if err := w.m.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}

	// Written, not reported: the lists and statuses still say running.
	if err := atomicfile.WriteJSON(filepath.Join(w.m.paths.ContainerDir(pod, id), "exit.json"), shim.ExitStatus{Code: 7}); err != nil {
		t.Fatal(err)
	}
	if cs := w.m.ListContainers(ctx); len(cs) != 1 || cs[0].State != ContainerRunning {
		t.Fatalf("ListContainers read the exit file: %+v", cs)
	}
	if v, err := w.m.Container(ctx, id); err != nil || v.State != ContainerRunning {
		t.Fatalf("Container read the exit file: %v %v", v.State, err)
	}
	if ps := w.m.ListPodSandboxes(ctx); len(ps) != 1 || !ps[0].Ready {
		t.Fatalf("ListPodSandboxes: %+v", ps)
	}

	// Reported: the watcher (on its second Wait) records the exit.
	if err := s.Kill(ctx, id, 9); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := w.m.Container(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if v.State == ContainerExited {
			if v.Exit.Code != 137 || v.Reason != ReasonError {
				t.Errorf("exit %+v reason %q, want code 137 (the Wait's), Error", v.Exit, v.Reason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the exit was not noticed in 10 s (state %s): a failed Wait must be tried again", v.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if cs := w.m.ListContainers(ctx); len(cs) != 1 || cs[0].State != ContainerExited {
		t.Errorf("ListContainers after the exit: %+v", cs)
	}
	s.mu.Lock()
	left := s.failWaits
	s.mu.Unlock()
	if left != 0 {
		t.Errorf("the watcher's Wait was not called (%d failures left)", left)
	}
}

// BenchmarkLists times the in-memory part of kubelet's relist with 500
// containers in 100 pods: what the daemon does before gRPC encodes the
// answer (issue 12 asks relist p99 ≤ 2 ms end to end).
func BenchmarkLists(b *testing.B) {
	w := newWorld(b)
	ctx := context.Background()
	for p := range 100 {
		cfg := podConfig(fmt.Sprintf("pod-%d", p))
		pod, err := w.m.RunPodSandbox(ctx, cfg, "")
		if err != nil {
			b.Fatal(err)
		}
		for c := range 5 {
			cc := ctrConfig(fmt.Sprintf("c%d", c))
			cc.Labels = map[string]string{"io.kubernetes.pod.name": cfg.Metadata.Name, "io.kubernetes.pod.namespace": "default",
				"io.kubernetes.pod.uid": cfg.Metadata.Uid, "io.kubernetes.container.name": cc.Metadata.Name}
			cc.Annotations = map[string]string{"io.kubernetes.container.hash": "1a2b3c4d", "io.kubernetes.container.restartCount": "0",
				"io.kubernetes.container.terminationMessagePath":   "/dev/termination-log",
				"io.kubernetes.container.terminationMessagePolicy": "File", "io.kubernetes.pod.terminationGracePeriod": "30"}
			if _, err := w.m.CreateContainer(ctx, pod, cc, cfg); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("ListContainers", func(b *testing.B) {
		for b.Loop() {
			if n := len(w.m.ListContainers(ctx)); n != 500 {
				b.Fatalf("%d containers listed, want 500", n)
			}
		}
	})
	b.Run("ListPodSandboxes", func(b *testing.B) {
		for b.Loop() {
			if n := len(w.m.ListPodSandboxes(ctx)); n != 100 {
				b.Fatalf("%d pods listed, want 100", n)
			}
		}
	})
}
