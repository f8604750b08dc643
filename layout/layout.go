// Package layout names the paths of husk's state (DESIGN.md, "Where state
// lives") in one place. The daemon wires its parts with them, the core
// keeps its records by them and husk doctor audits by them, without a
// daemon: spelled out once, they cannot drift apart. The image store's
// own tree under the root (content/, layers/, images/) is the image
// package's.
package layout

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Layout is one daemon's paths: Root persists (/var/lib/husk), State is
// gone at reboot (/run/husk).
type Layout struct {
	Root, State string
}

// Default is the layout of a daemon with the embedded configuration
// (config's root and state).
var Default = Layout{Root: "/var/lib/husk", State: "/run/husk"}

// PodsDir holds a dir per pod: <root>/pods.
func (l Layout) PodsDir() string { return filepath.Join(l.Root, "pods") }

// PodDir is pod id's dir: its record (pod.json), the infra's exit.json,
// bundle and files, and its containers.
func (l Layout) PodDir(id string) string { return filepath.Join(l.PodsDir(), id) }

// ContainersDir holds a dir per container of pod podID.
func (l Layout) ContainersDir(podID string) string {
	return filepath.Join(l.PodDir(podID), "containers")
}

// ContainerDir is container id's dir: record, exit.json, bundle, rootfs.
func (l Layout) ContainerDir(podID, id string) string {
	return filepath.Join(l.ContainersDir(podID), id)
}

// CNICacheDir is libcni's cache, which CNI DEL reads: <root>/cni/cache.
func (l Layout) CNICacheDir() string { return filepath.Join(l.Root, "cni", "cache") }

// IPAMDir is host-local's lease store: <root>/cni/networks.
func (l Layout) IPAMDir() string { return filepath.Join(l.Root, "cni", "networks") }

// ShimSocketDir holds the shims' sockets: <state>/s.
func (l Layout) ShimSocketDir() string { return filepath.Join(l.State, "s") }

// ShimSocket is pod podID's shim socket. The name is short: a unix socket
// path must fit in 108 bytes, also under a test's deep temp dir.
func (l Layout) ShimSocket(podID string) string {
	return filepath.Join(l.ShimSocketDir(), podID[:min(12, len(podID))]+".sock")
}

// NetnsDir holds the pinned network namespaces: <state>/netns/<pod id>.
func (l Layout) NetnsDir() string { return filepath.Join(l.State, "netns") }

// OCIDir is husk-oci's (libcontainer's) state: <state>/oci.
func (l Layout) OCIDir() string { return filepath.Join(l.State, "oci") }

// BootIDFile records the boot the state belongs to.
func (l Layout) BootIDFile() string { return filepath.Join(l.State, "boot_id") }

// BootID reads the kernel's id of this boot: what BootIDFile records, and
// what the image store marks unflushed layers with.
func BootID() (string, error) {
	data, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", fmt.Errorf("read boot id: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}
