package criclient

import (
	"strings"
	"testing"
)

func TestParseCNIInfo(t *testing.T) {
	husk := map[string]string{"cni": `{"confDir":"/etc/cni/net.d","binDirs":["/opt/cni/bin"],"network":{"name":"husk-default","cniVersion":"1.0.0","file":"/etc/cni/net.d/99-husk.conflist","plugins":["bridge","portmap"]}}`}
	s, ok := ParseCNIInfo(husk)
	if !ok || s.ConfDir != "/etc/cni/net.d" || len(s.Networks) != 1 ||
		s.Networks[0] != "husk-default (cniVersion 1.0.0) from /etc/cni/net.d/99-husk.conflist: bridge, portmap" {
		t.Errorf("husk cni info: %+v %v", s, ok)
	}
	none, ok := ParseCNIInfo(map[string]string{"cni": `{"confDir":"/x","reason":"no network config found in /x"}`})
	if !ok || len(none.Networks) != 0 || none.Reason != "no network config found in /x" {
		t.Errorf("husk cni info without a network: %+v", none)
	}
	// containerd's go-cni ConfigResult: Source is the config text.
	ctrd := map[string]string{"cniconfig": `{"PluginDirs":["/opt/cni/bin"],"PluginConfDir":"/etc/cni/net.d","Networks":[{"Config":{"Name":"cni-loopback","CNIVersion":"0.3.1","Plugins":[{"Network":{"type":"loopback"}}],"Source":"{...}"},"IFName":"lo"},{"Config":{"Name":"k8s","CNIVersion":"1.0.0","Plugins":[{"Network":{"type":"bridge"}},{"Network":{"type":"portmap"}}],"Source":"{...}"},"IFName":"eth0"}]}`}
	s, ok = ParseCNIInfo(ctrd)
	if !ok || strings.Join(s.Networks, "|") != "lo: cni-loopback (cniVersion 0.3.1): loopback|eth0: k8s (cniVersion 1.0.0): bridge, portmap" {
		t.Errorf("containerd cni info: %q", s.Networks)
	}
	if _, ok := ParseCNIInfo(map[string]string{}); ok {
		t.Error("no CNI info: parsed anyway")
	}
}
