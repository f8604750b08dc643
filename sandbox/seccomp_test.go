package sandbox

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The x32 ABI is left out of RuntimeDefault and Localhost filters exactly
// when the kernel cannot run it; the others stay.
func TestSeccompDropsABIsKernelLacks(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the default profile lists x32 on amd64 only")
	}
	local := filepath.Join(t.TempDir(), "profile.json")
	if err := os.WriteFile(local, []byte(`{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],"syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	defer func(f func() bool) { kernelRunsX32 = f }(kernelRunsX32)
	all := []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	for _, x32 := range []bool{true, false} {
		kernelRunsX32 = func() bool { return x32 }
		want := slices.Clone(all)
		if !x32 {
			want = slices.Clone(all[:2])
		}
		slices.Sort(want)
		for _, sp := range []*runtimeapi.SecurityProfile{
			{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
			{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: local},
		} {
			s := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}, Linux: &specs.Linux{}}
			if err := applySeccomp(s, sp); err != nil {
				t.Fatal(err)
			}
			got := s.Linux.Seccomp.Architectures
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("kernel runs x32 %v, %v profile: architectures %v, want %v", x32, sp.ProfileType, got, want)
			}
		}
	}
}
