package network

import (
	"encoding/json"

	"github.com/containernetworking/cni/libcni"
)

// The reference portmap plugin does nothing for a pod that maps no host
// port: ADD prints its prevResult unchanged, DEL and CHECK return at once
// (plugins v1.1.1, Debian 12's, checked by running it under strace: no
// iptables exec; upstream plugins/meta/portmap/main.go returns early in
// all three on an empty runtimeConfig.portMappings). Running it anyway is
// a Go binary's start-up for nothing, ~6% of the CPU of each pod start
// here (perf, 8 pods at a time) and again at each removal. So a pod
// without host ports is ADDed with the list minus its portmap entries, and
// libcni caches that list, so the pod's DEL runs without them too. Only
// the type "portmap" is left out, only when no mapping is asked for; every
// other plugin, and portmap for a pod with host ports, runs as configured.
const portmapType = "portmap"

// withoutIdlePortmap is list without its portmap plugins when rt maps no
// port; list itself when it maps some, has no portmap, or would be left
// empty.
func withoutIdlePortmap(list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) *libcni.NetworkConfigList {
	if _, mapped := rt.CapabilityArgs["portMappings"]; mapped {
		return list
	}
	keep := 0
	for _, p := range list.Plugins {
		if p.Network.Type != portmapType {
			keep++
		}
	}
	if keep == len(list.Plugins) || keep == 0 {
		return list
	}
	// Rebuilt from the bytes, not by slicing Plugins: libcni caches
	// list.Bytes for the DEL, which must see the list ADD ran.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(list.Bytes, &raw); err != nil {
		return list
	}
	var plugins []json.RawMessage
	if err := json.Unmarshal(raw["plugins"], &plugins); err != nil {
		return list
	}
	kept := plugins[:0]
	for _, p := range plugins {
		var t struct{ Type string }
		if json.Unmarshal(p, &t) == nil && t.Type == portmapType {
			continue
		}
		kept = append(kept, p)
	}
	b, err := json.Marshal(kept)
	if err != nil {
		return list
	}
	raw["plugins"] = b
	if b, err = json.Marshal(raw); err != nil {
		return list
	}
	out, err := libcni.NetworkConfFromBytes(b)
	if err != nil || len(out.Plugins) != keep {
		return list
	}
	return out
}
