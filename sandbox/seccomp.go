package sandbox

import (
	"fmt"
	"os"
	"path/filepath"

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
		return nil
	}
	return fmt.Errorf("unknown seccomp profile type %v: %w", sp.GetProfileType(), ErrInvalid)
}
