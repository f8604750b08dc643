package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// applySeccomp sets the spec's seccomp filter from the CRI profile. CRI: no
// profile means unconfined (kubelet sends RuntimeDefault explicitly when it
// wants it). RuntimeDefault is the Docker-derived default profile that
// containerd and CRI-O also start from; it is built from the spec's final
// capabilities, so call this last.
func applySeccomp(s *specs.Spec, sp *runtimeapi.SecurityProfile) error {
	if sp == nil {
		// Not the zero value of the enum, which is RuntimeDefault.
		return nil
	}
	switch sp.GetProfileType() {
	case runtimeapi.SecurityProfile_Unconfined:
		return nil
	case runtimeapi.SecurityProfile_RuntimeDefault:
		prof, err := seccomp.GetDefaultProfile(s)
		if err != nil {
			return fmt.Errorf("build RuntimeDefault seccomp profile: %w", err)
		}
		s.Linux.Seccomp = prof
		dropABIsKernelLacks(s)
		return nil
	case runtimeapi.SecurityProfile_Localhost:
		path := sp.GetLocalhostRef()
		if !filepath.IsAbs(path) {
			return fmt.Errorf("seccomp localhost profile %q is not an absolute path: %w", path, ErrInvalid)
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("seccomp localhost profile: %v: %w", err, ErrInvalid)
		}
		prof, err := seccomp.LoadProfile(string(body), s)
		if err != nil {
			return fmt.Errorf("seccomp localhost profile %s: %v: %w", path, err, ErrInvalid)
		}
		s.Linux.Seccomp = prof
		dropABIsKernelLacks(s)
		return nil
	}
	return fmt.Errorf("unknown seccomp profile type %v: %w", sp.GetProfileType(), ErrInvalid)
}

// nativeArch is libseccomp's name for this machine's own syscall ABI.
var nativeArch = map[string]specs.Arch{
	"amd64": specs.ArchX86_64, "arm64": specs.ArchAARCH64, "386": specs.ArchX86,
	"arm": specs.ArchARM, "ppc64le": specs.ArchPPC64LE, "s390x": specs.ArchS390X,
	"riscv64": specs.ArchRISCV64, "loong64": specs.ArchLOONGARCH64,
}[runtime.GOARCH]

// nativeArchOnly narrows a filter to the native ABI. libseccomp compiles
// the rules once per architecture listed, so the default profile's three on
// amd64 (x86_64, x86, x32) cost about three times one: ~28 ms of each pod
// start here. Syscalls of an ABI left out are refused by the filter, so
// this is only for a binary known to be native, like husk's own pause; app
// containers keep the full list (they may run 32-bit programs).
func nativeArchOnly(s *specs.Spec) {
	if s.Linux == nil || s.Linux.Seccomp == nil || nativeArch == "" {
		return
	}
	if slices.Contains(s.Linux.Seccomp.Architectures, nativeArch) {
		s.Linux.Seccomp.Architectures = []specs.Arch{nativeArch}
	}
}

// kernelRunsX32 says whether this kernel runs x32 syscalls (amd64 only;
// seccomp_amd64.go probes it once). A variable, so tests can give either
// answer.
var kernelRunsX32 = x32Supported

// dropABIsKernelLacks leaves out of a filter the x32 ABI when the kernel
// cannot run x32 syscalls (CONFIG_X86_X32_ABI off, Debian's default, or
// off at boot): no x32 program can be executed there (ENOEXEC) and every
// x32 syscall fails whatever the filter says, so nothing that worked
// stops working. (A stray x32 syscall now meets the filter's bad-arch
// action, which kills, where it would have got ENOSYS.) It is worth it because
// libseccomp compiles the rules once per ABI and x86_64 with x32 is its
// costliest pair: the default profile for x86_64, x86 and x32 took 20 ms
// to build and compile here, for x86_64 and x86 8 ms, on each container
// start (inside runc init, where libcontainer 1.5 gives no way to load a
// filter compiled once: see the issue 12 note). x86 stays, as 32-bit
// programs run through the kernel's ia32 emulation.
func dropABIsKernelLacks(s *specs.Spec) {
	if s.Linux == nil || s.Linux.Seccomp == nil || kernelRunsX32() {
		return
	}
	s.Linux.Seccomp.Architectures = slices.DeleteFunc(s.Linux.Seccomp.Architectures, func(a specs.Arch) bool { return a == specs.ArchX32 })
}
