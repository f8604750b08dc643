package doctor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/husk-runtime/husk/mount"
	"github.com/husk-runtime/husk/network"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NewHost is the real machine, with CNI DEL run the way the daemon runs it
// (network.Manager.Teardown on husk's own CNI cache and IPAM dirs).
func NewHost(cfg Config) (*Host, error) {
	net, err := network.New(network.Config{
		ConfDir: cfg.CNIConfDir, BinDirs: cfg.CNIBinDirs,
		CacheDir: cfg.cniCacheDir(), IPAMDataDir: cfg.ipamDir(),
		NetnsDir: cfg.netnsDir(), BridgeName: cfg.Bridge,
		// Off, whatever the config says: with it on, a DEL without a
		// cached attachment would (re)write husk's default network file,
		// which is the daemon's to write (with the pod CIDR and subnet
		// it knows). Off, an existing default file is still used.
		DefaultNetwork: false,
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return nil, fmt.Errorf("set up CNI for teardown: %w", err)
	}
	return &Host{
		Proc: "/proc", Sys: "/sys", MountInfo: "/proc/self/mountinfo",
		Links:   netlinkLinks{},
		Unmount: mount.Unmount,
		Kill:    func(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) },
		Teardown: func(ctx context.Context, podID, netns string) error {
			return net.Teardown(ctx, network.PodNetwork{PodID: podID, NetnsPath: netns})
		},
		Now: time.Now,
	}, nil
}

type netlinkLinks struct{}

func (netlinkLinks) Ports(bridge string) ([]Port, error) {
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, nil
		}
		return nil, fmt.Errorf("find bridge %s: %w", bridge, err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var out []Port
	for _, l := range links {
		a := l.Attrs()
		if a.MasterIndex != br.Attrs().Index {
			continue
		}
		p := Port{Name: a.Name, PeerNsID: -1}
		if l.Type() == "veth" {
			p.PeerNsID = a.NetNsID
		}
		out = append(out, p)
	}
	return out, nil
}

func (netlinkLinks) NsID(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return -1, fmt.Errorf("open netns %s: %w", path, err)
	}
	defer f.Close()
	id, err := netlink.GetNetNsIdByFd(int(f.Fd()))
	if err != nil {
		return -1, fmt.Errorf("nsid of netns %s: %w", path, err)
	}
	return id, nil
}

func (netlinkLinks) Exists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

func (netlinkLinks) Delete(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find interface %s: %w", name, err)
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("delete interface %s: %w", name, err)
	}
	return nil
}

// lockIPAM takes host-local's lock of one network's lease dir (the plugin
// flocks <dir>/lock around every allocation and release).
func lockIPAM(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open IPAM lock in %s: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock IPAM dir %s: %w", dir, err)
	}
	return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}
