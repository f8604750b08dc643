package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// appArmorEnabled reports whether the kernel enforces AppArmor.
func appArmorEnabled() bool {
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && bytes.HasPrefix(b, []byte("Y"))
}

// applyAppArmor sets the container's AppArmor profile. A profile asked for
// on a host without AppArmor is refused rather than silently dropped: the
// pod would run with less confinement than its spec says. husk ships no
// default profile yet, so RuntimeDefault is refused on AppArmor hosts too,
// with a message saying so, instead of pretending.
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
		return fmt.Errorf("AppArmor RuntimeDefault: husk has no default AppArmor profile yet; use Localhost or Unconfined: %w", ErrFailedPrecondition)
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
