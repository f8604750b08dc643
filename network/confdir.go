package network

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
)

// confExtensions are the file names kubelet's old dockershim, containerd's
// go-cni and CRI-O all read from the CNI config dir.
var confExtensions = []string{".conf", ".conflist", ".json"}

// errNoNetwork is returned (wrapped) when ConfDir holds no usable config.
var errNoNetwork = errors.New("no usable CNI network config")

// Status reports whether pods can get a network: ready iff ConfDir holds a
// usable CNI config list (it parses, has at least one plugin, and every
// plugin binary is found in BinDirs). The CRI NetworkReady condition is
// built from it; kubelet polls it every few seconds, so it re-reads the
// directory on each call (a handful of small files) rather than caching
// and missing an add-on's config written in place.
func (m *Manager) Status() (ready bool, reason string) {
	if _, _, err := m.loadNetwork(); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// Info is what the runtime's verbose Status shows of pod networking: where
// configs and plugins are looked for, and the network pods get now (nil,
// with the reason, when none is usable).
type Info struct {
	ConfDir string       `json:"confDir"`
	BinDirs []string     `json:"binDirs"`
	Network *NetworkInfo `json:"network,omitempty"`
	Reason  string       `json:"reason,omitempty"`
}

// NetworkInfo describes the selected CNI network config list.
type NetworkInfo struct {
	Name       string   `json:"name"`
	CNIVersion string   `json:"cniVersion"`
	File       string   `json:"file"`
	Plugins    []string `json:"plugins"` // plugin types, in chain order
}

// Info selects the network as Status and Setup do (re-reading ConfDir) and
// describes it.
func (m *Manager) Info() Info {
	info := Info{ConfDir: m.cfg.ConfDir, BinDirs: m.cfg.BinDirs}
	list, file, err := m.loadNetwork()
	if err != nil {
		info.Reason = err.Error()
		return info
	}
	n := &NetworkInfo{Name: list.Name, CNIVersion: list.CNIVersion, File: file}
	for _, p := range list.Plugins {
		n.Plugins = append(n.Plugins, p.Network.Type)
	}
	info.Network = n
	return info
}

// loadNetwork selects the network pods are attached to, the way kubelet
// and containerd do: the config files of ConfDir sorted by name, the first
// that yields a valid list wins. husk's own default config is considered
// only after every other file, so an operator's or add-on's config wins
// whatever its name. When DefaultNetwork is on and ConfDir has no config
// file besides ours, ours is (re)written first.
func (m *Manager) loadNetwork() (*libcni.NetworkConfigList, string, error) {
	dir := m.cfg.ConfDir
	files, err := libcni.ConfFiles(dir, confExtensions)
	if err != nil {
		return nil, "", fmt.Errorf("%w: reading CNI config dir %s: %w", errNoNetwork, dir, err)
	}
	sort.Strings(files)

	var others []string
	for _, f := range files {
		if filepath.Base(f) != defaultConfName {
			others = append(others, f)
		}
	}
	candidates := others
	if m.cfg.DefaultNetwork {
		if len(others) == 0 {
			if err := m.ensureDefaultConf(); err != nil {
				return nil, "", fmt.Errorf("%w: %w", errNoNetwork, err)
			}
		}
		// Ours last, and only if it exists (an operator may have deleted
		// it while configs of their own are present).
		if own := filepath.Join(dir, defaultConfName); fileExists(own) {
			candidates = append(candidates, own)
		}
	} else if len(others) < len(files) {
		// DefaultNetwork was turned off but an older run left our file:
		// it is still a valid config an operator can see, so honour it
		// in its sorted place like any other file.
		candidates = files
	}

	if len(candidates) == 0 {
		return nil, "", fmt.Errorf("%w: no network config found in %s", errNoNetwork, dir)
	}
	var firstErr error
	for _, f := range candidates {
		list, err := m.loadConfFile(f)
		if err == nil {
			return list, f, nil
		}
		// Skipped like kubelet/containerd skip an invalid file, but
		// remembered so that the reason names what is wrong.
		m.log.Debug("skipping CNI config", "file", f, "error", err)
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, "", fmt.Errorf("%w in %s: %w", errNoNetwork, dir, firstErr)
}

// loadConfFile parses one config file into a list and checks that it can
// be run: a single-plugin .conf/.json is wrapped into a list (as libcni's
// callers do), and each plugin's binary must be present.
func (m *Manager) loadConfFile(path string) (*libcni.NetworkConfigList, error) {
	var list *libcni.NetworkConfigList
	if filepath.Ext(path) == ".conflist" {
		l, err := libcni.NetworkConfFromFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		list = l
	} else {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		conf, err := libcni.NetworkPluginConfFromBytes(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		//nolint:staticcheck // single-plugin files are still what many add-ons ship
		l, err := libcni.ConfListFromConf(conf)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		list = l
	}
	if len(list.Plugins) == 0 {
		return nil, fmt.Errorf("%s: network %q has no plugins", path, list.Name)
	}
	for _, p := range list.Plugins {
		if _, err := invoke.FindInPath(p.Network.Type, m.cfg.BinDirs); err != nil {
			return nil, fmt.Errorf("%s: network %q: %w", path, list.Name, err)
		}
	}
	return list, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
