package network

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/husk-runtime/husk/atomicfile"
)

const (
	// defaultConfName sorts late ("99-") so that a cluster network
	// add-on's own config, conventionally "10-<name>.conflist", comes
	// first for anything else that reads the directory too.
	defaultConfName = "99-husk-default.conflist"
	// DefaultNetworkName is the CNI network name of husk's default network.
	DefaultNetworkName = "husk-default"
)

// defaultConfList renders husk's default network: one bridge with
// host-local IPAM, and portmap for CRI PortMappings (hostPort).
//
// There is no loopback plugin in the list: CreateNetns brings `lo` up
// itself when it makes the netns, which is the only thing loopback's ADD
// does, and it saves one plugin exec per pod.
//
// subnets is one CIDR per address family (kubelet's dual-stack pod CIDR
// arrives as "v4,v6"); each gets its own host-local range set and a
// default route of its family.
func defaultConfList(bridge string, subnets []string, dataDir string) ([]byte, error) {
	type obj = map[string]any
	var ranges, routes []any
	for _, s := range subnets {
		ip, ipnet, err := net.ParseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("default network subnet: %w", err)
		}
		ranges = append(ranges, []any{obj{"subnet": ipnet.String()}})
		if ip.To4() != nil {
			routes = append(routes, obj{"dst": "0.0.0.0/0"})
		} else {
			routes = append(routes, obj{"dst": "::/0"})
		}
	}
	list := obj{
		"cniVersion": "1.0.0", // Debian's plugins (1.1.1) speak up to 1.0.0
		"name":       DefaultNetworkName,
		"plugins": []any{
			obj{
				"type":        "bridge",
				"bridge":      bridge,
				"isGateway":   true, // the bridge holds the gateway address, so pods get a default route
				"ipMasq":      true, // pods reach beyond the node with the node's address
				"hairpinMode": true, // a pod can reach itself through a Service/hostPort
				"ipam": obj{
					"type":    "host-local",
					"ranges":  ranges,
					"routes":  routes,
					"dataDir": dataDir,
				},
			},
			obj{
				"type":         "portmap",
				"capabilities": obj{"portMappings": true},
			},
		},
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// subnets returns the subnets of the default network: the pod CIDR kubelet
// gave through UpdatePodCIDR, else the configured Subnet.
func (m *Manager) subnets() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.podCIDR) > 0 {
		return append([]string(nil), m.podCIDR...)
	}
	return []string{m.cfg.Subnet}
}

// ensureDefaultConf writes ConfDir/99-husk-default.conflist if it is
// missing or differs from what the current settings render. Writing is
// atomic, so a concurrent reader (libcni here, or another runtime reading
// the same dir) sees the old or the new file, never half of one.
func (m *Manager) ensureDefaultConf() error {
	data, err := defaultConfList(m.cfg.BridgeName, m.subnets(), m.cfg.IPAMDataDir)
	if err != nil {
		return err
	}
	path := filepath.Join(m.cfg.ConfDir, defaultConfName)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := os.MkdirAll(m.cfg.ConfDir, 0o755); err != nil {
		return fmt.Errorf("creating CNI config dir: %w", err)
	}
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		return fmt.Errorf("writing default CNI config: %w", err)
	}
	m.log.Info("wrote default CNI network config", "path", path, "bridge", m.cfg.BridgeName, "subnets", m.subnets())
	return nil
}

// UpdatePodCIDR implements the network part of CRI UpdateRuntimeConfig:
// kubelet passes the node's pod CIDR (comma-separated when dual-stack).
// It is remembered, and when husk's default network is in use its config
// is rewritten with that subnet so new pods get addresses the cluster
// routes to this node. Pods already running keep their address; their DEL
// uses the config cached at ADD time (see Teardown), so the lease taken
// from the old range is still released. An empty CIDR is ignored, since
// kubelet sends one before the node has been given a range.
func (m *Manager) UpdatePodCIDR(cidr string) error {
	cidr = strings.TrimSpace(cidr)
	if cidr == "" {
		return nil
	}
	var subnets []string
	for _, s := range strings.Split(cidr, ",") {
		_, ipnet, err := net.ParseCIDR(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("network: pod CIDR %q: %w", cidr, err)
		}
		subnets = append(subnets, ipnet.String())
	}
	m.mu.Lock()
	m.podCIDR = subnets
	m.mu.Unlock()
	// kubelet sends the pod CIDR when it changes, not again after husk
	// restarts; without remembering it, the next load would rewrite the
	// default network back to cfg.Subnet.
	if err := os.MkdirAll(m.cfg.CacheDir, 0o700); err != nil {
		return fmt.Errorf("network: saving pod CIDR: %w", err)
	}
	if err := atomicfile.Write(m.podCIDRFile(), []byte(strings.Join(subnets, ",")+"\n"), 0o644); err != nil {
		return fmt.Errorf("network: saving pod CIDR: %w", err)
	}

	if !m.cfg.DefaultNetwork || !m.defaultInUse() {
		return nil
	}
	return m.ensureDefaultConf()
}

// podCIDRFile keeps the last UpdatePodCIDR across daemon restarts. It sits
// in husk's CNI cache dir, which is husk's own (libcni uses only its
// "results" subdirectory).
func (m *Manager) podCIDRFile() string {
	return filepath.Join(m.cfg.CacheDir, "husk-pod-cidr")
}

// loadPodCIDR restores what podCIDRFile kept; a missing or bad file means
// kubelet has not given one (or will again).
func (m *Manager) loadPodCIDR() {
	b, err := os.ReadFile(m.podCIDRFile())
	if err != nil {
		return
	}
	var subnets []string
	for _, s := range strings.Split(strings.TrimSpace(string(b)), ",") {
		_, ipnet, err := net.ParseCIDR(s)
		if err != nil {
			m.log.Warn("ignoring saved pod CIDR", "path", m.podCIDRFile(), "error", err)
			return
		}
		subnets = append(subnets, ipnet.String())
	}
	m.podCIDR = subnets
}

// defaultInUse reports whether husk's default config is, or is about to
// be, in ConfDir: it exists, or ConfDir has no other config file. Rewriting
// our file while an operator's config wins is harmless and keeps it right
// should theirs be removed.
func (m *Manager) defaultInUse() bool {
	if fileExists(filepath.Join(m.cfg.ConfDir, defaultConfName)) {
		return true
	}
	files, err := libcni.ConfFiles(m.cfg.ConfDir, confExtensions)
	return err == nil && len(files) == 0
}
