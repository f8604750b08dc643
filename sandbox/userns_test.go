package sandbox

import (
	"errors"
	"os"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func usernsPod(opts *runtimeapi.UserNamespace, host bool) *runtimeapi.PodSandboxConfig {
	ns := &runtimeapi.NamespaceOption{UsernsOptions: opts}
	if host {
		ns.Network = runtimeapi.NamespaceMode_NODE
	}
	return &runtimeapi.PodSandboxConfig{Linux: &runtimeapi.LinuxPodSandboxConfig{
		SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: ns}}}
}

func TestPodUserns(t *testing.T) {
	r := func(c, h, l uint32) []*runtimeapi.IDMapping {
		return []*runtimeapi.IDMapping{{ContainerId: c, HostId: h, Length: l}}
	}
	pod := runtimeapi.NamespaceMode_POD
	for _, tc := range []struct {
		name string
		opts *runtimeapi.UserNamespace
		host bool
		want *usernsMapping
		bad  bool
	}{
		{name: "none", opts: nil},
		{name: "node", opts: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}},
		{name: "node with mappings", opts: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE, Uids: r(0, 1, 1)}, bad: true},
		{name: "pod", opts: &runtimeapi.UserNamespace{Mode: pod, Uids: r(0, 65536, 65536), Gids: r(0, 131072, 65536)},
			want: &usernsMapping{UID: 65536, GID: 131072, Size: 65536}},
		{name: "container", opts: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_CONTAINER}, bad: true},
		{name: "target", opts: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_TARGET}, bad: true},
		{name: "no gids", opts: &runtimeapi.UserNamespace{Mode: pod, Uids: r(0, 65536, 65536)}, bad: true},
		{name: "two ranges", opts: &runtimeapi.UserNamespace{Mode: pod, Uids: append(r(0, 1000, 10), r(10, 5000, 10)...), Gids: r(0, 1000, 20)}, bad: true},
		{name: "root unmapped", opts: &runtimeapi.UserNamespace{Mode: pod, Uids: r(1, 1000, 10), Gids: r(1, 1000, 10)}, bad: true},
		{name: "empty", opts: &runtimeapi.UserNamespace{Mode: pod, Uids: r(0, 1000, 0), Gids: r(0, 1000, 0)}, bad: true},
		{name: "overflow", opts: &runtimeapi.UserNamespace{Mode: pod, Uids: r(0, 4294967000, 65536), Gids: r(0, 1000, 65536)}, bad: true},
		{name: "lengths differ", opts: &runtimeapi.UserNamespace{Mode: pod, Uids: r(0, 1000, 10), Gids: r(0, 1000, 20)}, bad: true},
		{name: "host network", opts: &runtimeapi.UserNamespace{Mode: pod, Uids: r(0, 1000, 10), Gids: r(0, 1000, 10)}, host: true, bad: true},
	} {
		got, err := podUserns(usernsPod(tc.opts, tc.host))
		if tc.bad {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: err %v, want ErrInvalid", tc.name, err)
			}
			continue
		}
		if err != nil || (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}

// TestUsernsSpecs checks that the infra joins the pinned user namespace
// (with a user that the range maps) and an app container the infra's, and
// that a CRI mount with id mappings becomes an idmapped bind mount.
func TestUsernsSpecs(t *testing.T) {
	p := testPod()
	p.UsernsPath = "/pods/p1/userns"
	s, err := infraSpec(p, "/r", podFiles{Shm: "/dev/shm"}, 0, &usernsMapping{UID: 100000, GID: 100000, Size: 65536})
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := nsOf(s, specs.UserNamespace); !ok || n.Path != p.UsernsPath || s.Process.User.UID != 65535 {
		t.Errorf("infra: user ns %+v (%v), uid %d", n, ok, s.Process.User.UID)
	}
	if s.Linux.UIDMappings != nil {
		t.Error("infra spec carries mappings beside a user namespace path")
	}
	short, err := infraSpec(p, "/r", podFiles{Shm: "/dev/shm"}, 0, &usernsMapping{UID: 100000, GID: 100000, Size: 1000})
	if err != nil || short.Process.User.UID != 0 {
		t.Errorf("infra in a 1000-id range: uid %d, %v; want root (65535 is unmapped)", short.Process.User.UID, err)
	}

	m := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 100000, Length: 65536}}
	c := &Container{ID: "c1", Config: &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
		Command:  []string{"/app"},
		Mounts:   []*runtimeapi.Mount{{HostPath: "/data", ContainerPath: "/data", UidMappings: m, GidMappings: m}},
	}}
	cs, err := containerSpec(p, c, imageConfig{}, "/rootfs", specs.User{}, podFiles{Shm: "/p/shm"}, nsPids{Infra: 4242}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := nsOf(cs, specs.UserNamespace); !ok || n.Path != "/proc/4242/ns/user" {
		t.Errorf("container user ns %+v (%v), want the infra's", n, ok)
	}
	want := specs.LinuxIDMapping{ContainerID: 0, HostID: 100000, Size: 65536}
	found := false
	for _, mnt := range cs.Mounts {
		if mnt.Destination == "/data" {
			found = len(mnt.UIDMappings) == 1 && mnt.UIDMappings[0] == want && len(mnt.GIDMappings) == 1 && mnt.GIDMappings[0] == want
		}
	}
	if !found {
		t.Errorf("no idmapped /data mount in %+v", cs.Mounts)
	}
}

// TestProbeUserns runs the start-up probe on this machine, whose kernel
// (5.19+) and filesystems have what pod user namespaces need, and on a
// path that is no directory at all.
func TestProbeUserns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a user namespace for another range")
	}
	if err := probeUserns(t.TempDir()); err != nil {
		t.Fatalf("probe on this machine: %v", err)
	}
	if err := probeUserns("/nonexistent/husk"); err == nil || !strings.Contains(err.Error(), "/nonexistent/husk") {
		t.Fatalf("probe of a missing root: %v", err)
	}
}
