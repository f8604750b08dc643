package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/husk-runtime/husk/image"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestCommandLine(t *testing.T) {
	img := imageConfig{Entrypoint: []string{"/ep"}, Cmd: []string{"c1", "c2"}}
	cases := []struct {
		cmd, args, want []string
	}{
		{nil, nil, []string{"/ep", "c1", "c2"}},                      // image's entrypoint + cmd
		{nil, []string{"a"}, []string{"/ep", "a"}},                   // args replace cmd
		{[]string{"/bin/x"}, nil, []string{"/bin/x"}},                // command drops the image's cmd
		{[]string{"/bin/x"}, []string{"a"}, []string{"/bin/x", "a"}}, // command + args
	}
	for _, c := range cases {
		got, err := commandLine(&runtimeapi.ContainerConfig{Command: c.cmd, Args: c.args}, img)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("command %v args %v: got %v, %v; want %v", c.cmd, c.args, got, err, c.want)
		}
	}
	_, err := commandLine(&runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "n"}}, imageConfig{})
	if err == nil || !strings.Contains(err.Error(), `"n"`) {
		t.Errorf("no command anywhere: %v", err)
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"PATH=/img", "A=1"}, []*runtimeapi.KeyValue{{Key: "A", Value: []byte("2")}, {Key: "B", Value: []byte("3")}})
	want := []string{"PATH=/img", "A=2", "B=3"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	if got := mergeEnv(nil, nil); !slices.Equal(got, []string{defaultPath}) {
		t.Fatalf("no env: got %v", got)
	}
}

func TestCapabilities(t *testing.T) {
	sec := &runtimeapi.LinuxContainerSecurityContext{Capabilities: &runtimeapi.Capability{
		DropCapabilities: []string{"NET_RAW", "cap_kill"}, AddCapabilities: []string{"SYS_ADMIN"}}}
	got := capabilities(sec)
	if slices.Contains(got, "CAP_NET_RAW") || slices.Contains(got, "CAP_KILL") || !slices.Contains(got, "CAP_SYS_ADMIN") || !slices.Contains(got, "CAP_CHOWN") {
		t.Fatalf("caps: %v", got)
	}
	all := capabilities(&runtimeapi.LinuxContainerSecurityContext{Capabilities: &runtimeapi.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"NET_BIND_SERVICE"}}})
	if !slices.Equal(all, []string{"CAP_NET_BIND_SERVICE"}) {
		t.Fatalf("drop ALL + add: %v", all)
	}
}

func testPod() *Pod {
	return &Pod{ID: "p1", Cgroup: "/kubepods/pod1", NetnsPath: "/run/husk/netns/p1", Config: &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "ns", Uid: "u"},
		Linux:    &runtimeapi.LinuxPodSandboxConfig{Sysctls: map[string]string{"net.ipv4.ip_forward": "1"}},
	}}
}

func nsOf(s *specs.Spec, t specs.LinuxNamespaceType) (specs.LinuxNamespace, bool) {
	for _, n := range s.Linux.Namespaces {
		if n.Type == t {
			return n, true
		}
	}
	return specs.LinuxNamespace{}, false
}

func TestContainerSpec(t *testing.T) {
	p := testPod()
	c := &Container{ID: "c1", Config: &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
		Command:  []string{"/app"},
		Mounts:   []*runtimeapi.Mount{{HostPath: "/data", ContainerPath: "/etc/hosts", Readonly: true}},
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, CpuShares: 512, OomScoreAdj: -997},
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD},
				Seccomp:          &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
			},
		},
	}}
	files := podFiles{Hostname: "/p/hostname", Hosts: "/p/hosts", ResolvConf: "/p/resolv.conf", Shm: "/p/shm"}
	s, err := containerSpec(p, c, imageConfig{WorkingDir: "/w"}, "/rootfs", specs.User{UID: 5}, files, nsPids{Infra: 4242}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.Process.Cwd != "/w" || s.Process.User.UID != 5 || s.Linux.CgroupsPath != "/kubepods/pod1/c1" {
		t.Fatalf("process/cgroup: %+v %s", s.Process, s.Linux.CgroupsPath)
	}
	if n, _ := nsOf(s, specs.NetworkNamespace); n.Path != p.NetnsPath {
		t.Fatalf("net ns %q, want the pinned netns", n.Path)
	}
	if n, _ := nsOf(s, specs.PIDNamespace); n.Path != "/proc/4242/ns/pid" {
		t.Fatalf("pid ns %q, want the infra's (POD mode)", n.Path)
	}
	if n, _ := nsOf(s, specs.IPCNamespace); n.Path != "/proc/4242/ns/ipc" {
		t.Fatalf("ipc ns %q", n.Path)
	}
	// The CRI mount replaces the pod's /etc/hosts; resolv.conf stays.
	var hosts []specs.Mount
	resolv := false
	for _, m := range s.Mounts {
		if m.Destination == "/etc/hosts" {
			hosts = append(hosts, m)
		}
		resolv = resolv || (m.Destination == "/etc/resolv.conf" && m.Source == "/p/resolv.conf")
	}
	if len(hosts) != 1 || hosts[0].Source != "/data" || !slices.Contains(hosts[0].Options, "ro") || !resolv {
		t.Fatalf("mounts: hosts %v resolv %v", hosts, resolv)
	}
	if *s.Linux.Resources.Memory.Limit != 64<<20 || *s.Linux.Resources.CPU.Shares != 512 {
		t.Fatalf("resources: %+v", s.Linux.Resources)
	}
	if *s.Process.OOMScoreAdj != 0 {
		t.Fatalf("oom_score_adj %d, want clamped to the floor 0", *s.Process.OOMScoreAdj)
	}
	if s.Linux.Seccomp == nil || len(s.Linux.Seccomp.Syscalls) == 0 {
		t.Fatal("RuntimeDefault seccomp not applied")
	}
	if s.Linux.Sysctl["net.ipv4.ip_forward"] != "1" {
		t.Fatalf("pod sysctls not applied: %v", s.Linux.Sysctl)
	}
}

func TestSeccompNilIsUnconfined(t *testing.T) {
	// The enum's zero value is RuntimeDefault; a nil profile is not.
	s := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}, Linux: &specs.Linux{}}
	if err := applySeccomp(s, nil); err != nil || s.Linux.Seccomp != nil {
		t.Fatalf("nil profile: %v %v", err, s.Linux.Seccomp)
	}
	if err := applySeccomp(s, &runtimeapi.SecurityProfile{}); err != nil || s.Linux.Seccomp == nil {
		t.Fatalf("zero profile (RuntimeDefault): %v %v", err, s.Linux.Seccomp)
	}
}

func TestContainerSpecRejects(t *testing.T) {
	p := testPod()
	bad := []*runtimeapi.ContainerConfig{
		{Metadata: &runtimeapi.ContainerMetadata{Name: "a"}, Command: []string{"x"}, Mounts: []*runtimeapi.Mount{{HostPath: "/x", ContainerPath: "rel"}}},
		{Metadata: &runtimeapi.ContainerMetadata{Name: "b"}, Command: []string{"x"}, Mounts: []*runtimeapi.Mount{{ContainerPath: "/y"}}},
		{Metadata: &runtimeapi.ContainerMetadata{Name: "c"}, Command: []string{"x"}, Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			Seccomp: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/nonexistent/profile.json"}}}},
	}
	for _, cfg := range bad {
		if _, err := containerSpec(p, &Container{ID: "c", Config: cfg}, imageConfig{}, "/r", specs.User{}, podFiles{}, nsPids{Infra: 1}, 0); err == nil {
			t.Errorf("%s: accepted", cfg.Metadata.Name)
		}
	}
}

func TestInfraSpecHostNamespaces(t *testing.T) {
	p := testPod()
	p.Config.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_NODE}}
	s, err := infraSpec(p, "/r", podFiles{Shm: "/dev/shm"}, -1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []specs.LinuxNamespaceType{specs.NetworkNamespace, specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace} {
		if _, ok := nsOf(s, typ); ok {
			t.Errorf("host-namespace pod got its own %s namespace", typ)
		}
	}
	if *s.Process.OOMScoreAdj != -998 || s.Process.User.UID != 65535 || !s.Root.Readonly {
		t.Fatalf("infra process: oom %d uid %d ro %v", *s.Process.OOMScoreAdj, s.Process.User.UID, s.Root.Readonly)
	}
}

func TestResolveUser(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nwww-data:x:33:\nextra:x:77:www-data\n"), 0o644)
	u, err := resolveUser(root, nil, "www-data")
	if err != nil || u.UID != 33 || u.GID != 33 || !slices.Contains(u.AdditionalGids, 77) {
		t.Fatalf("image user by name: %+v %v", u, err)
	}
	sec := &runtimeapi.LinuxContainerSecurityContext{RunAsUser: &runtimeapi.Int64Value{Value: 1000}, RunAsGroup: &runtimeapi.Int64Value{Value: 2000}, SupplementalGroups: []int64{3000}}
	u, err = resolveUser(root, sec, "www-data")
	if err != nil || u.UID != 1000 || u.GID != 2000 || !slices.Contains(u.AdditionalGids, 3000) {
		t.Fatalf("security context: %+v %v", u, err)
	}
	strict := &runtimeapi.LinuxContainerSecurityContext{SupplementalGroupsPolicy: runtimeapi.SupplementalGroupsPolicy_Strict, SupplementalGroups: []int64{3000}}
	u, err = resolveUser(root, strict, "www-data")
	if err != nil || slices.Contains(u.AdditionalGids, 77) || !slices.Contains(u.AdditionalGids, 3000) {
		t.Fatalf("Strict policy must drop the image's groups: %+v %v", u, err)
	}
	if _, err := resolveUser(root, &runtimeapi.LinuxContainerSecurityContext{RunAsUsername: "nobody-here"}, ""); err == nil {
		t.Fatal("unknown user name accepted")
	}
	if _, err := resolveUser(root, &runtimeapi.LinuxContainerSecurityContext{RunAsGroup: &runtimeapi.Int64Value{Value: 5}}, "www-data"); err == nil {
		t.Fatal("run_as_group without run_as_user accepted")
	}
}

func TestCgroupParent(t *testing.T) {
	if p, own, err := cgroupParent("", "abc"); err != nil || p != "/husk/abc" || !own {
		t.Fatalf("no parent: %s %v %v", p, own, err)
	}
	if p, own, err := cgroupParent("kubepods/besteffort/pod1", "abc"); err != nil || p != "/kubepods/besteffort/pod1" || own {
		t.Fatalf("relative parent: %s %v %v", p, own, err)
	}
	if _, _, err := cgroupParent("kubepods-besteffort.slice", "abc"); err == nil {
		t.Fatal("systemd slice accepted by the cgroupfs driver")
	}
}

func TestTargetPIDAndAppArmor(t *testing.T) {
	p := testPod()
	target := &Container{ID: "dbg", Config: &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "debug"}, Command: []string{"sh"},
		Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_TARGET, TargetId: "app"}}},
	}}
	s, err := containerSpec(p, target, imageConfig{}, "/r", specs.User{}, podFiles{}, nsPids{Infra: 1, Target: 777}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := nsOf(s, specs.PIDNamespace); n.Path != "/proc/777/ns/pid" {
		t.Fatalf("TARGET pid ns %q", n.Path)
	}
	if _, err := containerSpec(p, target, imageConfig{}, "/r", specs.User{}, podFiles{}, nsPids{Infra: 1}, 0); err == nil {
		t.Fatal("TARGET with no running target accepted")
	}
	if appArmorEnabled() {
		t.Skip("host has AppArmor; the refusal path is for hosts without it")
	}
	aa := &Container{ID: "aa", Config: &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "aa"}, Command: []string{"sh"},
		Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			Apparmor: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "localhost/p"}}},
	}}
	if _, err := containerSpec(p, aa, imageConfig{}, "/r", specs.User{}, podFiles{}, nsPids{Infra: 1}, 0); err == nil || !strings.Contains(err.Error(), "not enabled") {
		t.Fatalf("AppArmor profile on a host without AppArmor: %v", err)
	}
	aa.Config.Linux.SecurityContext.Apparmor = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
	if _, err := containerSpec(p, aa, imageConfig{}, "/r", specs.User{}, podFiles{}, nsPids{Infra: 1}, 0); err != nil {
		t.Fatalf("unconfined AppArmor: %v", err)
	}
}

// TestAppArmorRuntimeDefault plays an AppArmor host: RuntimeDefault loads
// and applies husk-default, and a failure to load it is an error, never a
// container without the confinement it asked for.
func TestAppArmorRuntimeDefault(t *testing.T) {
	enabled, load := appArmorEnabled, loadDefaultAppArmor
	t.Cleanup(func() { appArmorEnabled, loadDefaultAppArmor = enabled, load })
	appArmorEnabled = func() bool { return true }
	loads := 0
	loadDefaultAppArmor = func() error { loads++; return nil }

	p := testPod()
	c := &Container{ID: "aa", Config: &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "aa"}, Command: []string{"sh"},
		Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			Apparmor: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}}},
	}}
	s, err := containerSpec(p, c, imageConfig{}, "/r", specs.User{}, podFiles{}, nsPids{Infra: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.Process.ApparmorProfile != "husk-default" || loads != 1 {
		t.Fatalf("RuntimeDefault: profile %q, %d loads", s.Process.ApparmorProfile, loads)
	}
	is, err := infraSpec(p, "/r", podFiles{Shm: "/dev/shm"}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if is.Process.ApparmorProfile != "husk-default" {
		t.Fatalf("infra of a pod naming no profile on an AppArmor host: %q", is.Process.ApparmorProfile)
	}
	loadDefaultAppArmor = func() error { return fmt.Errorf("no apparmor_parser: %w", ErrFailedPrecondition) }
	if _, err := containerSpec(p, c, imageConfig{}, "/r", specs.User{}, podFiles{}, nsPids{Infra: 1}, 0); !errors.Is(err, ErrFailedPrecondition) {
		t.Fatalf("RuntimeDefault that cannot be loaded: %v", err)
	}
}

func TestContainerFollowsHostNetworkPod(t *testing.T) {
	// A container that says nothing of namespaces (zero value POD) in a
	// host-network pod shares the host's network, not a new empty one.
	p := testPod()
	p.HostNetwork, p.NetnsPath = true, ""
	p.Config.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_NODE}}
	c := &Container{ID: "c", Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "web"}, Command: []string{"x"}}}
	s, err := containerSpec(p, c, imageConfig{}, "/r", specs.User{}, podFiles{}, nsPids{Infra: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []specs.LinuxNamespaceType{specs.NetworkNamespace, specs.UTSNamespace, specs.IPCNamespace} {
		if n, ok := nsOf(s, typ); ok {
			t.Errorf("container in a host-network, host-IPC pod got %s namespace %q", typ, n.Path)
		}
	}
}

func TestNativeArchOnly(t *testing.T) {
	p := testPod()
	p.Config.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{Seccomp: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}}
	s, err := infraSpec(p, "/r", podFiles{Shm: "/dev/shm"}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	full := len(s.Linux.Seccomp.Architectures)
	nativeArchOnly(s)
	if nativeArch != "" && (len(s.Linux.Seccomp.Architectures) != 1 || s.Linux.Seccomp.Architectures[0] != nativeArch) {
		t.Fatalf("native-only architectures: %v (from %d)", s.Linux.Seccomp.Architectures, full)
	}
	if len(s.Linux.Seccomp.Syscalls) == 0 {
		t.Fatal("narrowing the architectures dropped the rules")
	}
}

// ContainerStatus names the image as the pod did when the image has that
// name, whichever name it was pulled under first (a mirror guard's, say).
func TestImageNameFollowsThePod(t *testing.T) {
	const d1 = "sha256:a508e67d9aeb57ca85d2572d0224a1ea81493499234ef12b8c3a83e666ffa1ea"
	img := image.Image{ID: "sha256:abc",
		RepoTags:    []string{"127.0.0.2:5000/e2e-test-images/busybox:1.37.0-2", "registry.k8s.io/e2e-test-images/busybox:1.37.0-2", "docker.io/library/busybox:latest"},
		RepoDigests: []string{"127.0.0.2:5000/e2e-test-images/busybox@" + d1, "registry.k8s.io/e2e-test-images/busybox@" + d1, "docker.io/library/busybox@" + d1}}
	for _, tc := range []struct {
		spec       *runtimeapi.ImageSpec
		name, repo string
	}{
		{&runtimeapi.ImageSpec{Image: "sha256:abc", UserSpecifiedImage: "registry.k8s.io/e2e-test-images/busybox:1.37.0-2"},
			"registry.k8s.io/e2e-test-images/busybox:1.37.0-2", "registry.k8s.io/e2e-test-images/busybox@" + d1},
		{&runtimeapi.ImageSpec{Image: "busybox"}, "docker.io/library/busybox:latest", "docker.io/library/busybox@" + d1},
		{&runtimeapi.ImageSpec{Image: "sha256:abc"}, "127.0.0.2:5000/e2e-test-images/busybox:1.37.0-2", "127.0.0.2:5000/e2e-test-images/busybox@" + d1},
		{&runtimeapi.ImageSpec{Image: "sha256:abc", UserSpecifiedImage: "other:1"}, "127.0.0.2:5000/e2e-test-images/busybox:1.37.0-2", "127.0.0.2:5000/e2e-test-images/busybox@" + d1},
	} {
		if got := imageName(img, tc.spec); got != tc.name {
			t.Errorf("imageName(%v) = %q, want %q", tc.spec, got, tc.name)
		}
		if got := repoRef(img, tc.spec); got != tc.repo {
			t.Errorf("repoRef(%v) = %q, want %q", tc.spec, got, tc.repo)
		}
	}
}
