package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// allCaps is what a privileged container gets: every capability husk
// itself holds, as containerd does. Root may lack some (these machines have
// no CAP_SYS_RESOURCE), and granting one we do not hold fails every start.
func allCaps() ([]string, error) {
	caps, err := capability.ListSupported()
	if err != nil {
		return nil, fmt.Errorf("list supported capabilities: %w", err)
	}
	own, err := capability.NewPid2(0)
	if err != nil {
		return nil, fmt.Errorf("read own capabilities: %w", err)
	}
	if err := own.Load(); err != nil {
		return nil, fmt.Errorf("read own capabilities: %w", err)
	}
	out := make([]string, 0, len(caps))
	for _, c := range caps {
		if own.Get(capability.PERMITTED, c) && own.Get(capability.BOUNDING, c) {
			out = append(out, "CAP_"+strings.ToUpper(c.String()))
		}
	}
	return out, nil
}

// hostDevices lists the node's device nodes for a privileged container,
// skipping what the container gets its own of (pts, shm, mqueue) and the
// console, as containerd does.
func hostDevices() ([]specs.LinuxDevice, error) {
	var out []specs.LinuxDevice
	err := filepath.WalkDir("/dev", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a device that vanished mid-walk
			}
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "pts", "shm", "mqueue", "fd", ".lxc", ".lxd-mounts", ".udev":
				return fs.SkipDir
			}
			return nil
		}
		if path == "/dev/console" {
			return nil
		}
		dev, ok, err := deviceAt(path, path)
		if err != nil || !ok {
			return err
		}
		out = append(out, dev)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list host devices: %w", err)
	}
	return out, nil
}

// deviceAt describes the device node at host so that it appears at path in
// the container. ok is false for anything that is not a device node.
func deviceAt(host, path string) (specs.LinuxDevice, bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(host, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return specs.LinuxDevice{}, false, nil
		}
		return specs.LinuxDevice{}, false, fmt.Errorf("stat device %s: %w", host, err)
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return specs.LinuxDevice{}, false, nil
	}
	mode := os.FileMode(st.Mode & 0o777)
	uid, gid := st.Uid, st.Gid
	return specs.LinuxDevice{
		Path: path, Type: typ, Major: int64(unix.Major(uint64(st.Rdev))), Minor: int64(unix.Minor(uint64(st.Rdev))),
		FileMode: &mode, UID: &uid, GID: &gid,
	}, true, nil
}
