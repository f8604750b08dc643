package podrun

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/husk-runtime/husk/kubepod"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// prepareHostPaths checks and creates host paths as kubelet's volume
// plugins do: emptyDir world-writable (owned by the fsGroup), hostPath
// checked against its type.
func prepareHostPaths(plan *kubepod.Plan) error {
	for _, hp := range plan.HostPaths {
		switch {
		case hp.EmptyDir:
			if err := os.MkdirAll(hp.Path, 0o777); err != nil {
				return fmt.Errorf("%s: create %s: %w", hp.Field, hp.Path, err)
			}
			if hp.Memory {
				if err := mountMemoryDir(hp); err != nil {
					return fmt.Errorf("%s: %w", hp.Field, err)
				}
			}
			mode := os.FileMode(0o777)
			if plan.FSGroup != nil {
				if err := os.Chown(hp.Path, -1, int(*plan.FSGroup)); err != nil {
					return fmt.Errorf("%s: give %s to fsGroup %d: %w", hp.Field, hp.Path, *plan.FSGroup, err)
				}
				mode |= os.ModeSetgid
			}
			// Chmod, not the umask-filtered mode of MkdirAll.
			if err := os.Chmod(hp.Path, mode); err != nil {
				return fmt.Errorf("%s: chmod %s: %w", hp.Field, hp.Path, err)
			}
			if err := writeVolumeFiles(hp, plan.FSGroup); err != nil {
				return fmt.Errorf("%s: %w", hp.Field, err)
			}
		case hp.SubPath:
			if _, err := os.Lstat(hp.Path); errors.Is(err, os.ErrNotExist) {
				if err := os.MkdirAll(hp.Path, 0o750); err != nil {
					return fmt.Errorf("%s: create %s: %w", hp.Field, hp.Path, err)
				}
			}
		default:
			if err := checkHostPath(hp); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkHostPath(hp kubepod.HostPath) error {
	fi, err := os.Stat(hp.Path)
	if errors.Is(err, os.ErrNotExist) {
		switch hp.Type {
		case corev1.HostPathUnset:
			return nil // no check: the runtime creates a missing bind source dir
		case corev1.HostPathDirectoryOrCreate:
			if err := os.MkdirAll(hp.Path, 0o755); err != nil {
				return fmt.Errorf("%s: create %s: %w", hp.Field, hp.Path, err)
			}
			return nil
		case corev1.HostPathFileOrCreate:
			if err := os.MkdirAll(filepath.Dir(hp.Path), 0o755); err != nil {
				return fmt.Errorf("%s: create %s: %w", hp.Field, filepath.Dir(hp.Path), err)
			}
			f, err := os.OpenFile(hp.Path, os.O_CREATE|os.O_RDONLY, 0o644)
			if err != nil {
				return fmt.Errorf("%s: create %s: %w", hp.Field, hp.Path, err)
			}
			return f.Close()
		}
		return fmt.Errorf("%s: %s does not exist (type %s)", hp.Field, hp.Path, hp.Type)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", hp.Field, err)
	}
	var ok bool
	switch hp.Type {
	case corev1.HostPathUnset:
		ok = true
	case corev1.HostPathDirectory, corev1.HostPathDirectoryOrCreate:
		ok = fi.IsDir()
	case corev1.HostPathFile, corev1.HostPathFileOrCreate:
		ok = fi.Mode().IsRegular()
	case corev1.HostPathSocket:
		ok = fi.Mode()&os.ModeSocket != 0
	case corev1.HostPathCharDev:
		ok = fi.Mode()&os.ModeCharDevice != 0
	case corev1.HostPathBlockDev:
		ok = fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0
	}
	if !ok {
		return fmt.Errorf("%s: %s is not of type %s", hp.Field, hp.Path, hp.Type)
	}
	return nil
}

// mountMemoryDir mounts the tmpfs of a medium: Memory emptyDir on its dir,
// unless it is there already (a pod run again after a crash of the CLI).
func mountMemoryDir(hp kubepod.HostPath) error {
	if m, err := mountinfo.Mounted(hp.Path); err != nil {
		return fmt.Errorf("check %s: %w", hp.Path, err)
	} else if m {
		return nil
	}
	opts := "mode=0777"
	if hp.SizeLimit > 0 {
		opts += ",size=" + strconv.FormatInt(hp.SizeLimit, 10)
	}
	if err := unix.Mount("tmpfs", hp.Path, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", hp.Path, err)
	}
	return nil
}

// writeVolumeFiles writes a configMap, secret or projected volume's files
// with their modes, group fsGroup when the pod has one (as kubelet's
// volume plugins do). A Secret's volume is a tmpfs (hp.Memory), so its
// data never reaches the disk.
func writeVolumeFiles(hp kubepod.HostPath, fsGroup *int64) error {
	for _, f := range hp.Files {
		p := filepath.Join(hp.Path, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", filepath.Dir(p), err)
		}
		if err := os.WriteFile(p, f.Data, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		if fsGroup != nil {
			if err := os.Chown(p, -1, int(*fsGroup)); err != nil {
				return fmt.Errorf("give %s to fsGroup %d: %w", p, *fsGroup, err)
			}
		}
		// Chmod: WriteFile's mode is filtered by the umask.
		if err := os.Chmod(p, f.Mode); err != nil {
			return fmt.Errorf("chmod %s: %w", p, err)
		}
	}
	return nil
}
