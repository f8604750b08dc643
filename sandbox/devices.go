package sandbox

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criDevices turns the CRI devices into spec device nodes and cgroup
// rules. A host path that is a directory brings every device below it,
// placed under the container path, as containerd does.
func criDevices(devs []*runtimeapi.Device) ([]specs.LinuxDevice, []specs.LinuxDeviceCgroup, error) {
	var nodes []specs.LinuxDevice
	var rules []specs.LinuxDeviceCgroup
	add := func(host, path, perms string) error {
		dev, ok, err := deviceAt(host, path)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("device %s is not a device node: %w", host, ErrInvalid)
		}
		major, minor := dev.Major, dev.Minor
		nodes = append(nodes, dev)
		rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: dev.Type, Major: &major, Minor: &minor, Access: perms})
		return nil
	}
	for _, d := range devs {
		perms := d.GetPermissions()
		if perms == "" {
			perms = "rwm"
		}
		if strings.Trim(perms, "rwm") != "" {
			return nil, nil, fmt.Errorf("device %s: permissions %q are not a subset of rwm: %w", d.GetHostPath(), perms, ErrInvalid)
		}
		if !filepath.IsAbs(d.GetHostPath()) || !filepath.IsAbs(d.GetContainerPath()) {
			return nil, nil, fmt.Errorf("device %q -> %q: paths must be absolute: %w", d.GetHostPath(), d.GetContainerPath(), ErrInvalid)
		}
		err := filepath.WalkDir(d.GetHostPath(), func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return fmt.Errorf("device %s: %v: %w", p, err, ErrInvalid)
			}
			if e.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(d.GetHostPath(), p)
			return add(p, filepath.Join(d.GetContainerPath(), rel), perms)
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return nodes, rules, nil
}
