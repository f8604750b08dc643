package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/moby/profiles/apparmor"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// appArmorEnabled reports whether the kernel enforces AppArmor. A variable
// so that unit tests can play an AppArmor host.
var appArmorEnabled = func() bool {
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && bytes.HasPrefix(b, []byte("Y"))
}

// defaultAppArmorProfile is the profile RuntimeDefault stands for: Docker's
// and containerd's default (moby/profiles/apparmor's template) under husk's
// own name, loaded the first time a container asks for it.
const defaultAppArmorProfile = "husk-default"

// loadDefaultAppArmor makes sure defaultAppArmorProfile is in the kernel.
// A variable so that unit tests need no apparmor_parser.
var loadDefaultAppArmor = func() error {
	appArmorMu.Lock()
	defer appArmorMu.Unlock()
	if loaded, err := apparmor.IsLoaded(defaultAppArmorProfile); err == nil && loaded {
		return nil
	}
	// InstallDefault runs apparmor_parser (Debian's `apparmor` package),
	// which every AppArmor host has to load its own profiles. A failure is
	// not remembered: the next container tries again.
	if err := apparmor.InstallDefault(defaultAppArmorProfile); err != nil {
		return fmt.Errorf("loading husk's default AppArmor profile %q: %v: %w", defaultAppArmorProfile, err, ErrFailedPrecondition)
	}
	return nil
}

var appArmorMu sync.Mutex

// applyAppArmor sets the container's AppArmor profile. A profile asked for
// on a host without AppArmor is refused rather than silently dropped: the
// pod would run with less confinement than its spec says. On an AppArmor
// host RuntimeDefault is husk-default, the profile Docker and containerd
// apply by default (kubelet asks for it for every container there).
func applyAppArmor(s *specs.Spec, sp *runtimeapi.SecurityProfile, privileged bool) error {
	if sp == nil || sp.GetProfileType() == runtimeapi.SecurityProfile_Unconfined || privileged {
		return nil
	}
	if !appArmorEnabled() {
		return fmt.Errorf("AppArmor profile %s asked for, but AppArmor is not enabled on this host: %w", sp.GetProfileType(), ErrInvalid)
	}
	switch sp.GetProfileType() {
	case runtimeapi.SecurityProfile_Localhost:
		name := strings.TrimPrefix(sp.GetLocalhostRef(), "localhost/")
		if !appArmorLoaded(name) {
			return fmt.Errorf("AppArmor profile %q is not loaded on this host: %w", name, ErrInvalid)
		}
		s.Process.ApparmorProfile = name
		return nil
	case runtimeapi.SecurityProfile_RuntimeDefault:
		if err := loadDefaultAppArmor(); err != nil {
			return err
		}
		s.Process.ApparmorProfile = defaultAppArmorProfile
		return nil
	}
	return fmt.Errorf("unknown AppArmor profile type %v: %w", sp.GetProfileType(), ErrInvalid)
}

// appArmorLoaded reports whether the kernel knows a profile by name.
func appArmorLoaded(name string) bool {
	b, err := os.ReadFile("/sys/kernel/security/apparmor/profiles")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if p, _, ok := strings.Cut(l, " ("); ok && p == name {
			return true
		}
	}
	return false
}
