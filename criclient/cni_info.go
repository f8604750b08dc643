package criclient

import (
	"encoding/json"
	"fmt"
	"strings"
)

// CNIInfo is the CNI part of a runtime's verbose Status info, from husk's
// "cni" key or containerd's "cniconfig".
type CNIInfo struct {
	ConfDir  string
	BinDirs  []string
	Networks []string // one line each
	Reason   string   // why there is no network
}

// huskCNI is husk's "cni" info (network.Info).
type huskCNI struct {
	ConfDir string   `json:"confDir"`
	BinDirs []string `json:"binDirs"`
	Network *struct {
		Name       string   `json:"name"`
		CNIVersion string   `json:"cniVersion"`
		File       string   `json:"file"`
		Plugins    []string `json:"plugins"`
	} `json:"network"`
	Reason string `json:"reason"`
}

// containerdCNI is containerd's "cniconfig" info (go-cni's ConfigResult).
type containerdCNI struct {
	PluginDirs    []string `json:"PluginDirs"`
	PluginConfDir string   `json:"PluginConfDir"`
	Networks      []struct {
		Config struct {
			Name       string `json:"Name"`
			CNIVersion string `json:"CNIVersion"`
			Plugins    []struct {
				Network struct {
					Type string `json:"type"`
				} `json:"Network"`
			} `json:"Plugins"`
		} `json:"Config"`
		IFName string `json:"IFName"`
	} `json:"Networks"`
}

func networkLine(name, version, file string, plugins []string) string {
	s := fmt.Sprintf("%s (cniVersion %s)", name, version)
	if file != "" {
		s += " from " + file
	}
	return s + ": " + strings.Join(plugins, ", ")
}

// ParseCNIInfo reads the CNI part of a verbose Status info; false when
// the runtime put none there that husk knows.
func ParseCNIInfo(info map[string]string) (CNIInfo, bool) {
	if v, ok := info["cni"]; ok {
		var h huskCNI
		if json.Unmarshal([]byte(v), &h) == nil {
			s := CNIInfo{ConfDir: h.ConfDir, BinDirs: h.BinDirs, Reason: h.Reason}
			if n := h.Network; n != nil {
				s.Networks = append(s.Networks, networkLine(n.Name, n.CNIVersion, n.File, n.Plugins))
			}
			return s, true
		}
	}
	if v, ok := info["cniconfig"]; ok {
		var c containerdCNI
		if json.Unmarshal([]byte(v), &c) == nil {
			s := CNIInfo{ConfDir: c.PluginConfDir, BinDirs: c.PluginDirs}
			for _, n := range c.Networks {
				var plugins []string
				for _, p := range n.Config.Plugins {
					plugins = append(plugins, p.Network.Type)
				}
				// Source is the config's text, not its file: not shown.
				line := networkLine(n.Config.Name, n.Config.CNIVersion, "", plugins)
				if n.IFName != "" {
					line = n.IFName + ": " + line
				}
				s.Networks = append(s.Networks, line)
			}
			if len(s.Networks) == 0 {
				s.Reason = info["lastCNILoadStatus"]
			}
			return s, true
		}
	}
	return CNIInfo{}, false
}
