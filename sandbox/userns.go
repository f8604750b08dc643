package sandbox

import (
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/husk-runtime/husk/image"
	"github.com/husk-runtime/husk/nspin"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// usernsMapping is a pod's user namespace: container ids [0, Size) are host
// ids [UID, UID+Size) and [GID, GID+Size).
type usernsMapping struct {
	UID, GID, Size uint32
}

// podUserns reads and checks the user namespace a pod asks for: nil for
// none (no options, or NamespaceMode NODE). husk supports what kubelet sends
// for `hostUsers: false` (KEP-127): mode POD with one uid and one gid range,
// each mapping container id 0, as containerd and CRI-O do; per-container
// (CONTAINER) and TARGET user namespaces are refused.
func podUserns(cfg *runtimeapi.PodSandboxConfig) (*usernsMapping, error) {
	ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	opts := ns.GetUsernsOptions()
	if opts == nil {
		// Not to be read through GetMode: its zero value is POD.
		return nil, nil
	}
	switch opts.GetMode() {
	case runtimeapi.NamespaceMode_NODE:
		if len(opts.GetUids()) > 0 || len(opts.GetGids()) > 0 {
			return nil, fmt.Errorf("user namespace mode NODE takes no uid or gid mappings: %w", ErrInvalid)
		}
		return nil, nil
	case runtimeapi.NamespaceMode_POD:
	default:
		return nil, fmt.Errorf("user namespace mode %s is not supported (only POD and NODE): %w", opts.GetMode(), ErrInvalid)
	}
	if ns.GetNetwork() == runtimeapi.NamespaceMode_NODE || ns.GetPid() == runtimeapi.NamespaceMode_NODE || ns.GetIpc() == runtimeapi.NamespaceMode_NODE {
		// The host's namespaces belong to the host's user namespace:
		// a pod in its own one could not administer them anyway, and
		// kubelet forbids hostUsers: false with any of them.
		return nil, fmt.Errorf("a pod user namespace cannot be combined with the host's network, PID or IPC namespace: %w", ErrInvalid)
	}
	uid, err := oneRange("uid", opts.GetUids())
	if err != nil {
		return nil, err
	}
	gid, err := oneRange("gid", opts.GetGids())
	if err != nil {
		return nil, err
	}
	if uid.GetLength() != gid.GetLength() {
		return nil, fmt.Errorf("user namespace: uid and gid mappings differ in length (%d and %d): %w", uid.GetLength(), gid.GetLength(), ErrInvalid)
	}
	return &usernsMapping{UID: uid.GetHostId(), GID: gid.GetHostId(), Size: uid.GetLength()}, nil
}

// oneRange checks that maps is one range that maps container id 0.
func oneRange(kind string, maps []*runtimeapi.IDMapping) (*runtimeapi.IDMapping, error) {
	if len(maps) != 1 {
		return nil, fmt.Errorf("user namespace: want exactly one %s mapping, got %d: %w", kind, len(maps), ErrInvalid)
	}
	r := maps[0]
	switch {
	case r.GetContainerId() != 0:
		return nil, fmt.Errorf("user namespace: the %s mapping must start at container id 0 (got %d): %w", kind, r.GetContainerId(), ErrInvalid)
	case r.GetLength() == 0:
		return nil, fmt.Errorf("user namespace: the %s mapping is empty: %w", kind, ErrInvalid)
	case uint64(r.GetHostId())+uint64(r.GetLength()) > math.MaxUint32:
		return nil, fmt.Errorf("user namespace: the %s mapping %d+%d runs past the last id: %w", kind, r.GetHostId(), r.GetLength(), ErrInvalid)
	}
	return r, nil
}

// idmap is how the pod's rootfs mounts see ids: nil without a user
// namespace.
func (p *Pod) idmap() *image.IDMap {
	if p.UsernsPath == "" {
		return nil
	}
	um, err := podUserns(p.Config)
	if err != nil || um == nil {
		return nil // checked when the pod was made
	}
	return &image.IDMap{Userns: p.UsernsPath, UID: um.UID, GID: um.GID}
}

// holderArg0 is the name under which the daemon's binary re-executes itself
// as the short-lived process that creates a pod's user and network
// namespaces (see init below).
const holderArg0 = "husk-userns-holder"

// init turns a process started as holderArg0 into the holder: it waits,
// doing nothing, until its stdin closes. It lives in an init function so
// that any binary linking this package, the daemon or a test, can play the
// holder without a separate executable, the way runc re-executes itself.
func init() {
	if len(os.Args) > 0 && os.Args[0] == holderArg0 {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
}

// createUserns makes the pod's user namespace with mapping um and pins it
// with a bind mount on usernsPath. With withNet it also makes a network
// namespace owned by it and hands that to adoptNetns (which pins it) while
// both exist.
//
// No API creates a user namespace without a process, so a holder is cloned
// into new namespaces (the uid and gid maps written by os/exec before it
// runs), pinned, and let go. setgroups stays allowed: a container's
// supplemental groups need it.
//
// On failure nothing is left mounted.
func createUserns(usernsPath string, um *usernsMapping, withNet bool, adoptNetns func(nsFile string) error) (err error) {
	if err := nspin.Create(usernsPath); err != nil {
		return fmt.Errorf("user namespace: %w", err)
	}
	defer func() {
		if err != nil {
			_ = removeUserns(usernsPath)
		}
	}()

	proc, release, err := startHolder(um, withNet)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := release(); rerr != nil && err == nil {
			err = rerr
		}
	}()
	if err := nspin.Pin(proc+"user", usernsPath); err != nil {
		return fmt.Errorf("user namespace: %w", err)
	}
	if withNet {
		if err := adoptNetns(proc + "net"); err != nil {
			return err
		}
	}
	return nil
}

// startHolder clones a holder process into a new user namespace with
// mapping um (and a new network namespace owned by it, withNet). It returns
// the holder's /proc/PID/ns/ directory, valid until release, which lets the
// holder exit and reaps it.
func startHolder(um *usernsMapping, withNet bool) (proc string, release func() error, err error) {
	flags := uintptr(syscall.CLONE_NEWUSER)
	if withNet {
		flags |= syscall.CLONE_NEWNET
	}
	stdin, w, err := os.Pipe()
	if err != nil {
		return "", nil, fmt.Errorf("user namespace: %w", err)
	}
	// /proc/self/exe is resolved in the child before it execs, so it is
	// this binary, and as a magic link it is reached without searching
	// directories the mapped root may not enter.
	cmd := &exec.Cmd{Path: "/proc/self/exe", Args: []string{holderArg0}, Stdin: stdin}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 flags,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(um.UID), Size: int(um.Size)}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(um.GID), Size: int(um.Size)}},
		GidMappingsEnableSetgroups: true,
		Pdeathsig:                  syscall.SIGKILL,
	}
	err = cmd.Start()
	stdin.Close()
	if err != nil {
		w.Close()
		return "", nil, fmt.Errorf("user namespace: start holder: %w", err)
	}
	release = func() error {
		w.Close() // EOF on its stdin: the holder exits
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("user namespace: holder: %w", err)
		}
		return nil
	}
	return "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/", release, nil
}

// probeUserns checks that pods can have user namespaces on this node with
// their layers under root: the kernel lets husk create a user namespace
// (user.max_user_namespaces, and no LSM in the way), overlayfs takes
// idmapped layers (Linux 5.19), and root's filesystem can be idmapped (as
// critest checks too). The daemon runs it once at start; Status advertises
// the result per runtime handler, and kubelet sends hostUsers: false pods
// only where it is set.
func probeUserns(root string) error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	var major, minor int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor); err != nil {
		return fmt.Errorf("kernel release %q: %w", unix.ByteSliceToString(u.Release[:]), err)
	}
	if major < 5 || major == 5 && minor < 19 {
		return fmt.Errorf("kernel %d.%d: overlayfs takes idmapped layers from 5.19", major, minor)
	}
	// Any mapping does: no process runs in it.
	proc, release, err := startHolder(&usernsMapping{UID: 1 << 30, GID: 1 << 30, Size: 65536}, false)
	if err != nil {
		return err
	}
	defer release()
	ns, err := os.Open(proc + "user")
	if err != nil {
		return fmt.Errorf("user namespace: %w", err)
	}
	defer ns.Close()
	tree, err := unix.OpenTree(unix.AT_FDCWD, root, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree %s: %w", root, err)
	}
	// The clone is detached and never attached: closing it unmounts it.
	defer unix.Close(tree)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns.Fd())}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		return fmt.Errorf("idmapped mount of %s: %w", root, err)
	}
	return nil
}

// removeUserns unpins a user namespace pinned by createUserns and removes
// its file. It is idempotent.
func removeUserns(path string) error {
	if path == "" {
		return nil
	}
	if err := nspin.Unpin(path); err != nil {
		return fmt.Errorf("user namespace: %w", err)
	}
	return nil
}

// openForMappedRoot lets the mapped root of a user-namespaced pod walk to
// dir: libcontainer mounts the rootfs and the pod's files from inside the
// user namespace, where host-root-only directories are closed to it. The
// dirs get the x bit for others only, never r: nothing can be listed.
func openForMappedRoot(root, dir string) error {
	rel, err := filepath.Rel(root, dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("user namespace: %s is not under %s", dir, root)
	}
	p := root
	for _, part := range append([]string{""}, strings.Split(rel, string(filepath.Separator))...) {
		p = filepath.Join(p, part)
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("user namespace: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, fi.Mode().Perm()|0o011); err != nil {
				return fmt.Errorf("user namespace: %w", err)
			}
		}
	}
	return nil
}
