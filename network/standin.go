package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
)

// The bridge and ptp plugins remove their ipMasq rules only when their DEL
// finds the pod's interface in the netns: they learn the pod's addresses
// from it (plugins 1.1.1 and 1.7.1 alike, bridge.go cmdDel). With the
// netns already gone, a spec-conforming DEL without CNI_NETNS releases the
// lease but leaves a CNI-<hash> nat chain and its POSTROUTING jump behind
// for good. So when Teardown finds the netns gone, it gives DEL a stand-in:
// a fresh netns holding an interface with the pod's interface name
// and the addresses from the cached ADD result. The plugin then deletes
// that interface, and its rules, itself; husk never edits a plugin's
// iptables rules.

// masqPlugins are the reference plugins whose DEL tears ipMasq down from
// the pod interface's addresses. The stand-in is used only for lists that
// contain one with ipMasq on, so third-party plugins never see it.
var masqPlugins = map[string]bool{"bridge": true, "ptp": true}

// standInNetns returns the path of a stand-in netns for a DEL of rt on
// list, and a func that removes it; ok is false when no stand-in is needed
// or possible (no masquerading plugin, or no cached addresses).
func (m *Manager) standInNetns(list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (path string, remove func(), ok bool) {
	if !hasMasqPlugin(list) {
		return "", nil, false
	}
	cached, err := m.cni.GetNetworkListCachedResult(list, rt)
	if err != nil || cached == nil {
		return "", nil, false
	}
	res, err := types100.NewResultFromResult(cached)
	if err != nil {
		return "", nil, false
	}
	var addrs []*net.IPNet
	for _, ipc := range res.IPs {
		if ipc == nil || ipc.Interface == nil || *ipc.Interface < 0 || *ipc.Interface >= len(res.Interfaces) {
			continue
		}
		if i := res.Interfaces[*ipc.Interface]; i.Sandbox != "" && i.Name == rt.IfName {
			a := ipc.Address
			addrs = append(addrs, &a)
		}
	}
	if len(addrs) == 0 {
		return "", nil, false
	}

	path = filepath.Join(m.cfg.NetnsDir, ".del-"+rt.ContainerID)
	if err := m.makeStandIn(path, rt.IfName, addrs); err != nil {
		m.log.Warn("stand-in netns for CNI DEL; masquerade rules may be left", "pod", rt.ContainerID, "error", err)
		return "", nil, false
	}
	return path, func() {
		if err := RemoveNetns(path); err != nil {
			m.log.Warn("removing stand-in netns", "path", path, "error", err)
		}
	}, true
}

func (m *Manager) makeStandIn(path, ifName string, addrs []*net.IPNet) error {
	// A leftover from an interrupted Teardown is replaced.
	if err := RemoveNetns(path); err != nil {
		return err
	}
	if err := os.MkdirAll(m.cfg.NetnsDir, 0o755); err != nil {
		return fmt.Errorf("creating netns dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("creating stand-in netns file: %w", err)
	}
	f.Close()
	errCh := make(chan error, 1)
	go func() {
		errCh <- pinNewNetns(path, func() error {
			// A veth pair with both ends in the stand-in netns, not a
			// dummy link: kernels built without the dummy driver exist
			// (this one), and veth is what bridge needs anyway.
			d := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: ifName}, PeerName: "standin0"}
			if err := netlink.LinkAdd(d); err != nil {
				return fmt.Errorf("adding veth %s: %w", ifName, err)
			}
			for _, a := range addrs {
				// IFA_F_NODAD: no duplicate address detection for IPv6,
				// the address only has to be listed.
				if err := netlink.AddrAdd(d, &netlink.Addr{IPNet: a, Flags: 0x02}); err != nil {
					return fmt.Errorf("adding %s to %s: %w", a, ifName, err)
				}
			}
			return nil
		})
	}()
	if err := <-errCh; err != nil {
		return errors.Join(err, RemoveNetns(path))
	}
	return nil
}

func hasMasqPlugin(list *libcni.NetworkConfigList) bool {
	for _, p := range list.Plugins {
		var c struct {
			Type   string `json:"type"`
			IPMasq bool   `json:"ipMasq"`
		}
		if json.Unmarshal(p.Bytes, &c) == nil && masqPlugins[c.Type] && c.IPMasq {
			return true
		}
	}
	return false
}
