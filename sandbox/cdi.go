package sandbox

import (
	"fmt"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"tags.cncf.io/container-device-interface/pkg/cdi"
)

// cdiDevices injects the CDI devices a container asks for (device plugins
// and DRA drivers name them as vendor.com/class=name) into its spec, from
// the CDI spec files in the configured dirs. The library applies each
// device's edits: device nodes, mounts, env, hooks.
type cdiDevices struct {
	dirs []string
	once sync.Once
	c    *cdi.Cache
	err  error
}

func (d *cdiDevices) inject(s *specs.Spec, devs []*runtimeapi.CDIDevice) error {
	if len(devs) == 0 {
		return nil
	}
	d.once.Do(func() {
		// Refreshed on each use rather than watched: a driver installs its
		// spec file just before the pod that needs it.
		d.c, d.err = cdi.NewCache(cdi.WithSpecDirs(d.dirs...), cdi.WithAutoRefresh(false))
	})
	if d.err != nil {
		return fmt.Errorf("CDI spec dirs %v: %w", d.dirs, d.err)
	}
	if err := d.c.Refresh(); err != nil {
		// Errors name the broken spec files; devices from the good ones
		// still resolve, so go on and let injection decide.
		_ = err
	}
	names := make([]string, 0, len(devs))
	for _, dev := range devs {
		names = append(names, dev.GetName())
	}
	if unresolved, err := d.c.InjectDevices(s, names...); err != nil {
		if len(unresolved) > 0 {
			return fmt.Errorf("CDI devices %s not found in %s: %w", strings.Join(unresolved, ", "), strings.Join(d.dirs, ", "), ErrInvalid)
		}
		return fmt.Errorf("CDI devices %s: %w", strings.Join(names, ", "), err)
	}
	return nil
}
