// Package network gives a pod its network: a pinned network namespace, the
// CNI ADD/DEL calls that wire it up, and the resolv.conf, hostname and hosts
// files that the pod's containers see.
//
// The daemon calls it in the order DESIGN.md lays out for RunPodSandbox:
// CreateNetns, Setup (CNI ADD), then WriteResolvConf/WriteHostname/WriteHosts;
// and on stop/remove: Teardown (CNI DEL), then RemoveNetns. Teardown is meant
// to run while the netns still exists (see cni.go for why), but it tolerates
// a netns that is already gone, as the CNI spec requires of DEL.
package network

import (
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/containernetworking/cni/libcni"
	"github.com/husk-runtime/husk/layout"
)

// Defaults applied by New to empty Config fields. The CNI cache, netns
// and IPAM dirs default to layout.Default's: everything husk owns is under
// its own roots, so a husk daemon never shares the CNI cache or IPAM
// leases with containerd or CRI-O on the same node.
const (
	DefaultConfDir    = "/etc/cni/net.d"
	DefaultBridgeName = "husk0"
	// DefaultSubnet collides with neither containerd's/podman's
	// 10.88.0.0/16 nor CRI-O's 10.85.0.0/16.
	DefaultSubnet = "10.77.0.0/16"
)

// DefaultBinDirs are searched for CNI plugin binaries: the upstream location
// first, then Debian's package location.
var DefaultBinDirs = []string{"/opt/cni/bin", "/usr/lib/cni"}

// Config configures a Manager. Empty fields take the Default* values above.
type Config struct {
	ConfDir  string   // CNI config dir, e.g. /etc/cni/net.d
	BinDirs  []string // CNI plugin dirs, e.g. /opt/cni/bin, /usr/lib/cni
	CacheDir string   // libcni CacheDir, under husk's root (e.g. /var/lib/husk/cni/cache)
	NetnsDir string   // where pinned netns files live, e.g. /run/husk/netns

	// DefaultNetwork makes husk write its own bridge network config into
	// ConfDir when ConfDir has none (see defaultnet.go).
	DefaultNetwork bool
	// Default network knobs, so side-by-side test daemons don't collide.
	BridgeName  string // default "husk0"; at most 15 bytes (IFNAMSIZ-1)
	Subnet      string // default "10.77.0.0/16"
	IPAMDataDir string // host-local dataDir, under husk's root

	// Logger receives the package's logs; slog.Default() when nil.
	Logger *slog.Logger
}

// Manager runs CNI for pods. It is safe for concurrent use: libcni and the
// reference plugins serialise on their own (host-local takes a file lock),
// and the Manager's own mutable state is guarded by mu.
type Manager struct {
	cfg Config
	log *slog.Logger
	cni *libcni.CNIConfig

	mu      sync.Mutex
	podCIDR []string // from UpdatePodCIDR; overrides cfg.Subnet for the default network
}

// New checks cfg, fills in defaults and returns a Manager. It does not touch
// ConfDir: the default network is written lazily, when a config is first
// needed (Status, Setup), so that an add-on that installs its config after
// husk starts still wins.
func New(cfg Config) (*Manager, error) {
	if cfg.ConfDir == "" {
		cfg.ConfDir = DefaultConfDir
	}
	if len(cfg.BinDirs) == 0 {
		cfg.BinDirs = append([]string(nil), DefaultBinDirs...)
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = layout.Default.CNICacheDir()
	}
	if cfg.NetnsDir == "" {
		cfg.NetnsDir = layout.Default.NetnsDir()
	}
	if cfg.IPAMDataDir == "" {
		cfg.IPAMDataDir = layout.Default.IPAMDir()
	}
	if cfg.BridgeName == "" {
		cfg.BridgeName = DefaultBridgeName
	}
	if cfg.Subnet == "" {
		cfg.Subnet = DefaultSubnet
	}
	// The kernel limits interface names to IFNAMSIZ-1 = 15 bytes; the bridge
	// plugin would otherwise fail only at the first pod's ADD.
	if len(cfg.BridgeName) > 15 {
		return nil, fmt.Errorf("network: bridge name %q is longer than 15 bytes", cfg.BridgeName)
	}
	if _, _, err := net.ParseCIDR(cfg.Subnet); err != nil {
		return nil, fmt.Errorf("network: default subnet: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	m := &Manager{
		cfg: cfg,
		log: log.With("component", "network"),
		// The cache dir is set on the CNIConfig (not the deprecated
		// RuntimeConf.CacheDir) so that every call, including
		// GetCachedAttachments in Teardown, uses husk's own cache.
		cni: libcni.NewCNIConfigWithCacheDir(cfg.BinDirs, cfg.CacheDir, nil),
	}
	m.loadPodCIDR()
	return m, nil
}
