package sandbox

import (
	"os"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func privilegedPod() *Pod {
	p := testPod()
	p.Config.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{Privileged: true}
	return p
}

func TestPrivilegedSpec(t *testing.T) {
	c := &Container{ID: "c", Config: &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "priv"}, Command: []string{"x"},
		Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			Privileged: true,
			Seccomp:    &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
		}},
	}}
	s, err := containerSpec(privilegedPod(), c, imageConfig{}, "/r", specs.User{}, podFiles{}, nsPids{Infra: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Every capability this process holds: all of root's, none of a
	// non-root test's.
	want, err := allCaps()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Process.Capabilities.Bounding, want) || os.Geteuid() == 0 && !slices.Contains(want, "CAP_SYS_ADMIN") {
		t.Errorf("privileged caps: %v, want the %d this process holds (%v)", s.Process.Capabilities.Bounding, len(want), want)
	}
	if s.Linux.Seccomp != nil || len(s.Linux.MaskedPaths) != 0 || len(s.Linux.ReadonlyPaths) != 0 {
		t.Errorf("privileged container is still confined: seccomp %v masked %v ro %v", s.Linux.Seccomp != nil, s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	hasNull := false
	for _, d := range s.Linux.Devices {
		hasNull = hasNull || d.Path == "/dev/null"
	}
	if !hasNull || len(s.Linux.Resources.Devices) != 1 || !s.Linux.Resources.Devices[0].Allow {
		t.Errorf("privileged devices: %d nodes (null %v), rules %+v", len(s.Linux.Devices), hasNull, s.Linux.Resources.Devices)
	}
	for _, m := range s.Mounts {
		if (m.Destination == "/sys" || m.Destination == "/sys/fs/cgroup") && slices.Contains(m.Options, "ro") {
			t.Errorf("%s is read-only in a privileged container", m.Destination)
		}
	}
	// A privileged container needs a privileged pod.
	if _, err := containerSpec(testPod(), c, imageConfig{}, "/r", specs.User{}, podFiles{}, nsPids{Infra: 1}, 0); err == nil {
		t.Error("privileged container in an unprivileged pod accepted")
	}
}

func TestPropagationAndDevices(t *testing.T) {
	bidi := &runtimeapi.Mount{HostPath: "/", ContainerPath: "/host", Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL}
	if _, err := propagationOption(bidi, false); err == nil {
		t.Error("bidirectional propagation accepted for an unprivileged container")
	}
	if got := rootfsPropagation([]*runtimeapi.Mount{{Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}}); got != "rslave" {
		t.Errorf("rootfs propagation for host-to-container: %q", got)
	}
	if got := rootfsPropagation([]*runtimeapi.Mount{{}, bidi}); got != "rshared" {
		t.Errorf("rootfs propagation for bidirectional: %q", got)
	}
	if got, err := propagationOption(&runtimeapi.Mount{HostPath: "/tmp"}, false); err != nil || got != "rprivate" {
		t.Errorf("private: %q %v", got, err)
	}
	nodes, rules, err := criDevices([]*runtimeapi.Device{{HostPath: "/dev/null", ContainerPath: "/dev/mynull", Permissions: "rw"}})
	if err != nil || len(nodes) != 1 || nodes[0].Path != "/dev/mynull" || nodes[0].Type != "c" || nodes[0].Major != 1 || nodes[0].Minor != 3 {
		t.Fatalf("device /dev/null: %+v %v", nodes, err)
	}
	if len(rules) != 1 || rules[0].Access != "rw" || !rules[0].Allow {
		t.Fatalf("device rule: %+v", rules)
	}
	for _, bad := range []*runtimeapi.Device{
		{HostPath: "/dev/null", ContainerPath: "/dev/x", Permissions: "rwx"},
		{HostPath: "/etc/hostname", ContainerPath: "/dev/x"},
		{HostPath: "/nonexistent/dev", ContainerPath: "/dev/x"},
	} {
		if _, _, err := criDevices([]*runtimeapi.Device{bad}); err == nil {
			t.Errorf("device %+v accepted", bad)
		}
	}
}

func TestRecursiveReadOnlyAndGroupsPolicy(t *testing.T) {
	p := testPod()
	mk := func(ro bool) *Container {
		return &Container{ID: "c", Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "rro"}, Command: []string{"x"},
			Mounts: []*runtimeapi.Mount{{HostPath: "/tmp", ContainerPath: "/data", Readonly: ro, RecursiveReadOnly: true}},
		}}
	}
	s, err := containerSpec(p, mk(true), imageConfig{}, "/r", specs.User{}, podFiles{}, nsPids{Infra: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range s.Mounts {
		found = found || (m.Destination == "/data" && slices.Contains(m.Options, "rro"))
	}
	if !found {
		t.Errorf("recursive read-only mount lacks rro: %+v", s.Mounts)
	}
	if _, err := containerSpec(p, mk(false), imageConfig{}, "/r", specs.User{}, podFiles{}, nsPids{Infra: 1}, 0); err == nil {
		t.Error("recursive_read_only without readonly accepted")
	}
}
