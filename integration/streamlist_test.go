package integration

import (
	"errors"
	"io"
	"sort"
	"testing"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// collect reads a Stream* RPC to its end: it must end with io.EOF, and no
// response may be an empty list.
func collect[R any, T any](t *testing.T, name string, stream grpc.ServerStreamingClient[R], err error, items func(*R) []T) []T {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var out []T
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: stream ended with %v, not io.EOF", name, err)
		}
		got := items(r)
		if len(got) == 0 {
			t.Errorf("%s: a response with no items", name)
		}
		out = append(out, got...)
	}
}

// sameIDs checks that the streamed ids are the listed ones, each once.
func sameIDs(t *testing.T, name string, streamed, listed []string, want int) {
	t.Helper()
	seen := map[string]int{}
	for _, id := range streamed {
		seen[id]++
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s: %.12s streamed %d times", name, id, n)
		}
	}
	sort.Strings(streamed)
	sort.Strings(listed)
	if len(streamed) != want || len(listed) != want || !equalStrings(streamed, listed) {
		t.Errorf("%s: streamed %d %v, listed %d %v, want %d", name, len(streamed), streamed, len(listed), listed, want)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func idsOf[T any](items []T, id func(T) string) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, id(it))
	}
	return out
}

// TestStreamLists checks the KEP-5825 streaming lists against their unary
// counterparts: with 2 pods of 2 containers each, every Stream* RPC sends
// each item exactly once, applies the same filter, and ends with io.EOF.
func TestStreamLists(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	pull(t, d, ref)
	ctx := ctxT(t, 3*time.Minute)

	var pods, ctrs []string
	for _, name := range []string{"stream-a", "stream-b"} {
		pod := podConfig(name)
		pod.Labels = map[string]string{"set": name}
		podID := runPod(t, d, pod)
		pods = append(pods, podID)
		for _, c := range []string{"one", "two"} {
			cfg := ctrConfig(c, ref, "sleep", "3600")
			cfg.Labels = map[string]string{"ctr": c}
			ctrs = append(ctrs, runContainer(t, d, podID, pod, cfg))
		}
	}

	type check struct {
		name     string
		streamed func() []string
		listed   func() []string
		want     int
	}
	sandboxes := func(f *runtimeapi.PodSandboxFilter) check {
		return check{"StreamPodSandboxes",
			func() []string {
				s, err := d.RT.StreamPodSandboxes(ctx, &runtimeapi.StreamPodSandboxesRequest{Filter: f})
				return idsOf(collect(t, "StreamPodSandboxes", s, err, func(r *runtimeapi.StreamPodSandboxesResponse) []*runtimeapi.PodSandbox { return r.PodSandboxes }),
					func(p *runtimeapi.PodSandbox) string { return p.Id })
			},
			func() []string {
				r, err := d.RT.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: f})
				if err != nil {
					t.Fatal(err)
				}
				return idsOf(r.Items, func(p *runtimeapi.PodSandbox) string { return p.Id })
			}, 0}
	}
	containers := func(f *runtimeapi.ContainerFilter) check {
		return check{"StreamContainers",
			func() []string {
				s, err := d.RT.StreamContainers(ctx, &runtimeapi.StreamContainersRequest{Filter: f})
				return idsOf(collect(t, "StreamContainers", s, err, func(r *runtimeapi.StreamContainersResponse) []*runtimeapi.Container { return r.Containers }),
					func(c *runtimeapi.Container) string { return c.Id })
			},
			func() []string {
				r, err := d.RT.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: f})
				if err != nil {
					t.Fatal(err)
				}
				return idsOf(r.Containers, func(c *runtimeapi.Container) string { return c.Id })
			}, 0}
	}
	ctrStats := func(f *runtimeapi.ContainerStatsFilter) check {
		return check{"StreamContainerStats",
			func() []string {
				s, err := d.RT.StreamContainerStats(ctx, &runtimeapi.StreamContainerStatsRequest{Filter: f})
				return idsOf(collect(t, "StreamContainerStats", s, err, func(r *runtimeapi.StreamContainerStatsResponse) []*runtimeapi.ContainerStats { return r.ContainerStats }),
					func(c *runtimeapi.ContainerStats) string { return c.Attributes.Id })
			},
			func() []string {
				r, err := d.RT.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{Filter: f})
				if err != nil {
					t.Fatal(err)
				}
				return idsOf(r.Stats, func(c *runtimeapi.ContainerStats) string { return c.Attributes.Id })
			}, 0}
	}
	podStats := func(f *runtimeapi.PodSandboxStatsFilter) check {
		return check{"StreamPodSandboxStats",
			func() []string {
				s, err := d.RT.StreamPodSandboxStats(ctx, &runtimeapi.StreamPodSandboxStatsRequest{Filter: f})
				return idsOf(collect(t, "StreamPodSandboxStats", s, err, func(r *runtimeapi.StreamPodSandboxStatsResponse) []*runtimeapi.PodSandboxStats {
					return r.PodSandboxStats
				}),
					func(p *runtimeapi.PodSandboxStats) string { return p.Attributes.Id })
			},
			func() []string {
				r, err := d.RT.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{Filter: f})
				if err != nil {
					t.Fatal(err)
				}
				return idsOf(r.Stats, func(p *runtimeapi.PodSandboxStats) string { return p.Attributes.Id })
			}, 0}
	}
	images := func(f *runtimeapi.ImageFilter) check {
		return check{"StreamImages",
			func() []string {
				s, err := d.Img.StreamImages(ctx, &runtimeapi.StreamImagesRequest{Filter: f})
				return idsOf(collect(t, "StreamImages", s, err, func(r *runtimeapi.StreamImagesResponse) []*runtimeapi.Image { return r.Images }),
					func(i *runtimeapi.Image) string { return i.Id })
			},
			func() []string {
				r, err := d.Img.ListImages(ctx, &runtimeapi.ListImagesRequest{Filter: f})
				if err != nil {
					t.Fatal(err)
				}
				return idsOf(r.Images, func(i *runtimeapi.Image) string { return i.Id })
			}, 0}
	}
	metrics := check{"StreamPodSandboxMetrics",
		func() []string {
			s, err := d.RT.StreamPodSandboxMetrics(ctx, &runtimeapi.StreamPodSandboxMetricsRequest{})
			var out []string
			for _, m := range collect(t, "StreamPodSandboxMetrics", s, err, func(r *runtimeapi.StreamPodSandboxMetricsResponse) []*runtimeapi.PodSandboxMetrics {
				return r.PodSandboxMetrics
			}) {
				out = append(out, m.PodSandboxId)
				for _, c := range m.ContainerMetrics {
					out = append(out, c.ContainerId)
				}
			}
			return out
		},
		func() []string {
			r, err := d.RT.ListPodSandboxMetrics(ctx, &runtimeapi.ListPodSandboxMetricsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, m := range r.PodMetrics {
				out = append(out, m.PodSandboxId)
				for _, c := range m.ContainerMetrics {
					out = append(out, c.ContainerId)
				}
			}
			return out
		}, 6}
	with := func(c check, want int) check { c.want = want; return c }

	running := &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}
	exited := &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_EXITED}
	notReady := &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}
	checks := []check{
		with(sandboxes(nil), 2),
		with(sandboxes(&runtimeapi.PodSandboxFilter{Id: pods[1][:12]}), 1),
		with(sandboxes(&runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"set": "stream-a"}}), 1),
		with(sandboxes(&runtimeapi.PodSandboxFilter{State: notReady}), 0),
		with(containers(nil), 4),
		with(containers(&runtimeapi.ContainerFilter{PodSandboxId: pods[0]}), 2),
		with(containers(&runtimeapi.ContainerFilter{Id: ctrs[3]}), 1),
		with(containers(&runtimeapi.ContainerFilter{LabelSelector: map[string]string{"ctr": "two"}}), 2),
		with(containers(&runtimeapi.ContainerFilter{State: running, PodSandboxId: pods[1]}), 2),
		with(containers(&runtimeapi.ContainerFilter{State: exited}), 0),
		with(ctrStats(nil), 4),
		with(ctrStats(&runtimeapi.ContainerStatsFilter{PodSandboxId: pods[1], LabelSelector: map[string]string{"ctr": "one"}}), 1),
		with(podStats(nil), 2),
		with(podStats(&runtimeapi.PodSandboxStatsFilter{Id: pods[0]}), 1),
		with(images(nil), 2), // busybox and the built-in pause
		with(images(&runtimeapi.ImageFilter{Image: &runtimeapi.ImageSpec{Image: ref}}), 1),
		with(images(&runtimeapi.ImageFilter{Image: &runtimeapi.ImageSpec{Image: "no/such:image"}}), 0),
		metrics,
	}
	for _, c := range checks {
		sameIDs(t, c.name, c.streamed(), c.listed(), c.want)
	}

	for _, id := range pods {
		if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("RemovePodSandbox: %v", err)
		}
	}
	// With nothing left, the streams end at once with EOF.
	sameIDs(t, "StreamPodSandboxes (none)", sandboxes(nil).streamed(), nil, 0)
	sameIDs(t, "StreamContainers (none)", containers(nil).streamed(), nil, 0)
	for _, id := range pods {
		assertPodGone(t, d, id)
	}
	assertDaemonClean(t, d)
}
