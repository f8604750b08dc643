package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/husk-runtime/husk/nspin"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NetnsPath is where the pod's netns is pinned. It is known before the
// netns exists, so a record written first can name what to clean up after
// a crash.
func (m *Manager) NetnsPath(podID string) string { return filepath.Join(m.cfg.NetnsDir, podID) }

// RemoveNetns is the package's RemoveNetns, for callers that hold the
// manager behind an interface.
func (m *Manager) RemoveNetns(path string) error { return RemoveNetns(path) }

// CreateNetns makes a new network namespace for pod podID and pins it with
// a bind mount at NetnsDir/<podID>, so that it outlives every process in it:
// CNI ADD runs against it before the infra container exists, and CNI DEL
// runs against it after the infra container is gone (DESIGN.md, "Requests,
// step by step"). `lo` is brought up inside, which is why husk's default
// network has no loopback plugin.
//
// On any failure nothing is left: the mount is undone and the file removed.
func (m *Manager) CreateNetns(podID string) (path string, err error) {
	path, err = m.netnsFile(podID)
	if err != nil {
		return "", err
	}
	errCh := make(chan error, 1)
	go func() { errCh <- pinNewNetns(path, nil) }()
	if err := <-errCh; err != nil {
		if rerr := RemoveNetns(path); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return "", fmt.Errorf("network: creating netns for pod %s: %w", podID, err)
	}
	return path, nil
}

// AdoptNetns pins the network namespace of the file nsFile (a
// /proc/PID/ns/net) at NetnsPath(podID) and brings `lo` up in it, like
// CreateNetns does for a namespace it makes. A pod in a user namespace
// needs a netns owned by that user namespace (or the kernel refuses it a
// sysfs and its net.* sysctls), and only a process created in the user
// namespace can make one.
//
// On any failure nothing is left.
func (m *Manager) AdoptNetns(podID, nsFile string) (path string, err error) {
	path, err = m.netnsFile(podID)
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			if rerr := RemoveNetns(path); rerr != nil {
				err = errors.Join(err, rerr)
			}
			err = fmt.Errorf("network: pinning netns for pod %s: %w", podID, err)
		}
	}()
	if err := nspin.Pin(nsFile, path); err != nil {
		return "", err
	}
	err = ns.WithNetNSPath(path, func(ns.NetNS) error { return loUp() })
	return path, err
}

// netnsFile creates the empty file a netns of pod podID is pinned on.
func (m *Manager) netnsFile(podID string) (string, error) {
	if podID == "" || strings.ContainsAny(podID, "/\x00") || podID == "." || podID == ".." {
		return "", fmt.Errorf("network: invalid pod id %q for a netns name", podID)
	}
	if err := os.MkdirAll(m.cfg.NetnsDir, 0o755); err != nil {
		return "", fmt.Errorf("network: creating netns dir: %w", err)
	}
	path := m.NetnsPath(podID)

	if err := nspin.Create(path); err != nil {
		return "", fmt.Errorf("network: netns: %w", err)
	}
	return path, nil
}

// pinNewNetns moves the calling thread into a new network namespace, bind
// mounts that namespace onto path, brings `lo` up in it, runs inNetns (if
// not nil) inside it, and moves the thread back.
//
// It must run on its own goroutine, with the thread locked throughout. The
// thread is switched back to its original netns before it is unlocked: a
// goroutine that exits while locked gets its thread terminated, except on
// the main thread (m0), which the runtime cannot end and "wedges" instead
// (runtime.mexit). Had this goroutine landed on m0, that thread would hold
// the pod's netns alive for the life of the daemon, and with it the pod's
// veth after RemoveNetns (seen in this package's tests). If switching back
// fails the thread stays locked and is thrown away, the only safe choice
// (the same as ns.TempNetNS).
func pinNewNetns(path string, inNetns func() error) (err error) {
	runtime.LockOSThread()

	// The thread's current netns, to come back to.
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("opening current netns: %w", err)
	}
	defer orig.Close()

	// unshare(2) acts on the calling thread only; the rest of the process
	// stays in the host netns.
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return os.NewSyscallError("unshare(CLONE_NEWNET)", err)
	}
	defer func() {
		if serr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); serr != nil {
			// Stay locked: the runtime terminates the thread when
			// this goroutine returns.
			err = errors.Join(err, os.NewSyscallError("setns back to original netns", serr))
			return
		}
		runtime.UnlockOSThread()
	}()

	// /proc/thread-self is this thread (not the thread group leader, which
	// /proc/self would be): the one that was just unshared.
	if err := nspin.Pin("/proc/thread-self/ns/net", path); err != nil {
		return err
	}
	if err := loUp(); err != nil {
		return err
	}
	if inNetns != nil {
		return inNetns()
	}
	return nil
}

// loUp brings `lo` up in the calling thread's netns. netlink's
// package-level functions open a fresh socket per request in the calling
// thread's netns.
func loUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("finding lo in new netns: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bringing lo up in new netns: %w", err)
	}
	return nil
}

// RemoveNetns unpins a network namespace made by CreateNetns and removes its
// file. It is idempotent: an unmounted or missing path is not an error. The
// namespace itself is freed by the kernel once no process and no mount
// holds it any more.
func RemoveNetns(path string) error {
	if err := nspin.Unpin(path); err != nil {
		return fmt.Errorf("network: netns: %w", err)
	}
	return nil
}

// DialContext connects to address from inside the network namespace at
// netnsPath, for port-forward and probes. A socket belongs to the netns of
// the thread that created it, so only the socket(2)/connect(2) run inside
// the netns (on a thread that ns.Do locks and restores); the returned
// connection is then used from any goroutine.
func DialContext(ctx context.Context, netnsPath, network, address string) (net.Conn, error) {
	var conn net.Conn
	err := ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, address)
		conn = c
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("network: dial %s %s in netns %s: %w", network, address, netnsPath, err)
	}
	return conn, nil
}

// netnsUsable reports whether path is a mounted network namespace. A
// leftover plain file (after a reboot, /run here is on disk) is not one,
// and handing it to a plugin's DEL would make the bridge plugin fail with
// "not a network namespace" instead of treating the netns as gone.
func netnsUsable(path string) bool {
	return path != "" && ns.IsNSorErr(path) == nil
}
