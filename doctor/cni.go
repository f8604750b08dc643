package doctor

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
)

// The file names and defaults the daemon's network package uses
// (network/confdir.go, network/defaultnet.go).
var cniExtensions = []string{".conf", ".conflist", ".json"}

const defaultConfName = "99-husk-default.conflist"

// defaultPlugins are what husk's own default network runs.
var defaultPlugins = []string{"bridge", "host-local", "portmap"}

// CNIChecks checks the CNI config dir the way the daemon picks a network:
// files sorted by name, husk's own default last, the first that parses and
// whose plugins (and IPAM plugins) are all in the plugin dirs wins. Files
// that do not load are warned about; no usable network at all fails,
// unless husk writes its default one at first use and its plugins are
// there.
func CNIChecks(cfg Config) []Check {
	files, err := libcni.ConfFiles(cfg.CNIConfDir, cniExtensions)
	if err != nil {
		return []Check{{Name: "cni/config", Status: Fail, Reason: fmt.Sprintf("read CNI config dir %s: %v", cfg.CNIConfDir, err)}}
	}
	sort.Strings(files)
	var own string
	var others []string
	for _, f := range files {
		if filepath.Base(f) == defaultConfName {
			own = f
		} else {
			others = append(others, f)
		}
	}
	if own != "" {
		others = append(others, own)
	}
	var out []Check
	chosen := ""
	for _, f := range others {
		name, plugins, err := loadConf(f, cfg.CNIBinDirs)
		if err != nil {
			out = append(out, Check{Name: "cni/config", Status: Warn, Reason: err.Error() + " (skipped)"})
			continue
		}
		if chosen == "" {
			chosen = f
			out = append(out, Check{Name: "cni/config", Status: OK,
				Reason: fmt.Sprintf("pods join network %q from %s; plugins %s found in %s", name, f, strings.Join(plugins, ", "), strings.Join(cfg.CNIBinDirs, ":"))})
		}
	}
	if chosen != "" {
		return out
	}
	if cfg.DefaultNetwork && len(files) == 0 {
		var missing []string
		for _, p := range defaultPlugins {
			if _, err := invoke.FindInPath(p, cfg.CNIBinDirs); err != nil {
				missing = append(missing, p)
			}
		}
		if len(missing) > 0 {
			return append(out, Check{Name: "cni/config", Status: Fail,
				Reason: fmt.Sprintf("no config in %s; husk's default network needs plugins %s, not found in %s", cfg.CNIConfDir, strings.Join(missing, ", "), strings.Join(cfg.CNIBinDirs, ":"))})
		}
		return append(out, Check{Name: "cni/config", Status: OK,
			Reason: fmt.Sprintf("no config in %s yet; husk writes its default network (bridge %s) there at first use, and its plugins are present", cfg.CNIConfDir, cfg.Bridge)})
	}
	return append(out, Check{Name: "cni/config", Status: Fail,
		Reason: fmt.Sprintf("no usable network config in %s: pods cannot get a network (kubelet reports NetworkReady=false)", cfg.CNIConfDir)})
}

// loadConf loads one config file as a list (a single-plugin .conf or
// .json is wrapped, as every CNI runtime does) and checks that every
// plugin it runs, IPAM plugins included, is in binDirs.
func loadConf(path string, binDirs []string) (string, []string, error) {
	var list *libcni.NetworkConfigList
	if filepath.Ext(path) == ".conflist" {
		l, err := libcni.ConfListFromFile(path)
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", path, err)
		}
		list = l
	} else {
		data, err := os.ReadFile(path)
		if err != nil {
			return "", nil, fmt.Errorf("read CNI config: %w", err)
		}
		c, err := libcni.NetworkPluginConfFromBytes(data)
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", path, err)
		}
		//nolint:staticcheck // single-plugin files are still what many add-ons ship
		l, err := libcni.ConfListFromConf(c)
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", path, err)
		}
		list = l
	}
	if len(list.Plugins) == 0 {
		return "", nil, fmt.Errorf("%s: network %q has no plugins", path, list.Name)
	}
	var names, missing []string
	for _, p := range list.Plugins {
		types := []string{p.Network.Type}
		var ipam struct {
			IPAM struct {
				Type string `json:"type"`
			} `json:"ipam"`
		}
		if json.Unmarshal(p.Bytes, &ipam) == nil && ipam.IPAM.Type != "" {
			types = append(types, ipam.IPAM.Type)
		}
		for _, t := range types {
			names = append(names, t)
			if _, err := invoke.FindInPath(t, binDirs); err != nil {
				missing = append(missing, t)
			}
		}
	}
	if len(missing) > 0 {
		return "", nil, fmt.Errorf("%s: network %q: plugins %s not found in %s", path, list.Name, strings.Join(missing, ", "), strings.Join(binDirs, ":"))
	}
	return list.Name, names, nil
}
