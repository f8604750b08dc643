package network

import (
	"context"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
)

const bridgePortmapList = `{"cniVersion":"1.0.0","name":"n","plugins":[
	{"type":"bridge","bridge":"b0","ipam":{"type":"host-local","subnet":"10.1.0.0/24"}},
	{"type":"portmap","capabilities":{"portMappings":true}}]}`

func pluginTypes(l *libcni.NetworkConfigList) []string {
	var out []string
	for _, p := range l.Plugins {
		out = append(out, p.Network.Type)
	}
	return out
}

func TestWithoutIdlePortmap(t *testing.T) {
	list, err := libcni.NetworkConfFromBytes([]byte(bridgePortmapList))
	if err != nil {
		t.Fatal(err)
	}
	got := withoutIdlePortmap(list, runtimeConf(PodNetwork{PodID: "p"}, ""))
	if types := pluginTypes(got); len(types) != 1 || types[0] != "bridge" {
		t.Fatalf("no host ports: plugins %v, want [bridge]", types)
	}
	if got.Name != "n" || got.CNIVersion != "1.0.0" {
		t.Errorf("no host ports: list %q version %q, want n 1.0.0", got.Name, got.CNIVersion)
	}
	// What libcni caches for the DEL is the list ADD ran.
	again, err := libcni.NetworkConfFromBytes(got.Bytes)
	if err != nil || len(again.Plugins) != 1 || strings.Contains(string(got.Bytes), "portmap") {
		t.Errorf("no host ports: Bytes %s (%v), want the list without portmap", got.Bytes, err)
	}
	if !strings.Contains(string(got.Plugins[0].Bytes), `"host-local"`) {
		t.Errorf("bridge's own config lost its ipam: %s", got.Plugins[0].Bytes)
	}

	mapped := runtimeConf(PodNetwork{PodID: "p", PortMappings: []PortMapping{{HostPort: 8080, ContainerPort: 80}}}, "")
	if got := withoutIdlePortmap(list, mapped); got != list {
		t.Errorf("with a host port: plugins %v, want the list as configured", pluginTypes(got))
	}
	// hostPort 0 is informational (portMappings drops it): no mapping.
	informational := runtimeConf(PodNetwork{PodID: "p", PortMappings: []PortMapping{{ContainerPort: 80}}}, "")
	if types := pluginTypes(withoutIdlePortmap(list, informational)); len(types) != 1 {
		t.Errorf("containerPort only: plugins %v, want [bridge]", types)
	}
	only, _ := libcni.NetworkConfFromBytes([]byte(`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"portmap"}]}`))
	if got := withoutIdlePortmap(only, runtimeConf(PodNetwork{PodID: "p"}, "")); got != only {
		t.Error("a list of portmap alone was emptied")
	}
}

// With the real plugins: a pod without host ports is ADDed, cached and
// DELed without portmap, and leaves nothing.
func TestIdlePortmapSkippedRealPlugins(t *testing.T) {
	m, bridge, _ := rootCNIManager(t)
	pn, res := startPod(t, m, nil)
	atts, err := m.cni.GetCachedAttachments(pn.PodID)
	if err != nil || len(atts) != 1 {
		t.Fatalf("cached attachments: %d, %v; want one", len(atts), err)
	}
	if strings.Contains(string(atts[0].Config), portmapType) {
		t.Errorf("cached config of a pod without host ports names portmap: %s", atts[0].Config)
	}
	if err := m.Teardown(context.Background(), pn); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	assertNothingLeft(t, m, bridge, pn, res.IPs[0])
}
