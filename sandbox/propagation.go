package sandbox

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// propagationOption maps the CRI propagation to the mount option, and
// checks what the kernel needs for it: a mount can only receive events
// (rslave) from a source that is shared or a slave, and only send them
// back (rshared) from a shared one. Otherwise the container would silently
// see nothing, so fail instead, as containerd does.
func propagationOption(m *runtimeapi.Mount, privileged bool) (string, error) {
	switch m.GetPropagation() {
	case runtimeapi.MountPropagation_PROPAGATION_PRIVATE:
		return "rprivate", nil
	case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
		if err := sourcePropagation(m.GetHostPath(), "shared:", "master:"); err != nil {
			return "", err
		}
		return "rslave", nil
	case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		if !privileged {
			return "", fmt.Errorf("mount %s: bidirectional propagation needs a privileged container: %w", m.GetContainerPath(), ErrInvalid)
		}
		if err := sourcePropagation(m.GetHostPath(), "shared:"); err != nil {
			return "", err
		}
		return "rshared", nil
	}
	return "", fmt.Errorf("mount %s: unknown propagation %v: %w", m.GetContainerPath(), m.GetPropagation(), ErrInvalid)
}

// sourcePropagation checks that the mount holding path carries one of the
// optional mountinfo tags (shared:N, master:N).
func sourcePropagation(path string, tags ...string) error {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("mount source %s: %v: %w", path, err, ErrInvalid)
	}
	mounts, err := mountinfo.GetMounts(mountinfo.ParentsFilter(real))
	if err != nil {
		return fmt.Errorf("mountinfo for %s: %w", real, err)
	}
	var best *mountinfo.Info
	for _, m := range mounts {
		if best == nil || len(m.Mountpoint) >= len(best.Mountpoint) {
			best = m
		}
	}
	if best == nil {
		return fmt.Errorf("no mount holds %s: %w", real, ErrInvalid)
	}
	for _, t := range tags {
		if strings.Contains(best.Optional, t) {
			return nil
		}
	}
	return fmt.Errorf("mount source %s is on mount %s, which is not %s (make it so with mount --make-rshared): %w",
		path, best.Mountpoint, strings.Join(tags, " or "), ErrFailedPrecondition)
}

// rootfsPropagation is the propagation of the container's root: mounts
// can only propagate through a root that is itself slave or shared.
func rootfsPropagation(mounts []*runtimeapi.Mount) string {
	prop := ""
	for _, m := range mounts {
		switch m.GetPropagation() {
		case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
			return "rshared"
		case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
			prop = "rslave"
		}
	}
	return prop
}
