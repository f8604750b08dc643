package main

import (
	"bytes"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestParseCNIInfo(t *testing.T) {
	husk := map[string]string{"cni": `{"confDir":"/etc/cni/net.d","binDirs":["/opt/cni/bin"],"network":{"name":"husk-default","cniVersion":"1.0.0","file":"/etc/cni/net.d/99-husk.conflist","plugins":["bridge","portmap"]}}`}
	s, ok := parseCNIInfo(husk)
	if !ok || s.confDir != "/etc/cni/net.d" || len(s.networks) != 1 ||
		s.networks[0] != "husk-default (cniVersion 1.0.0) from /etc/cni/net.d/99-husk.conflist: bridge, portmap" {
		t.Errorf("husk cni info: %+v %v", s, ok)
	}
	none, ok := parseCNIInfo(map[string]string{"cni": `{"confDir":"/x","reason":"no network config found in /x"}`})
	if !ok || len(none.networks) != 0 || none.reason != "no network config found in /x" {
		t.Errorf("husk cni info without a network: %+v", none)
	}
	// containerd's go-cni ConfigResult: Source is the config text.
	ctrd := map[string]string{"cniconfig": `{"PluginDirs":["/opt/cni/bin"],"PluginConfDir":"/etc/cni/net.d","Networks":[{"Config":{"Name":"cni-loopback","CNIVersion":"0.3.1","Plugins":[{"Network":{"type":"loopback"}}],"Source":"{...}"},"IFName":"lo"},{"Config":{"Name":"k8s","CNIVersion":"1.0.0","Plugins":[{"Network":{"type":"bridge"}},{"Network":{"type":"portmap"}}],"Source":"{...}"},"IFName":"eth0"}]}`}
	s, ok = parseCNIInfo(ctrd)
	if !ok || strings.Join(s.networks, "|") != "lo: cni-loopback (cniVersion 0.3.1): loopback|eth0: k8s (cniVersion 1.0.0): bridge, portmap" {
		t.Errorf("containerd cni info: %q", s.networks)
	}
	if _, ok := parseCNIInfo(map[string]string{}); ok {
		t.Error("no CNI info: parsed anyway")
	}
}

func TestRenderInfo(t *testing.T) {
	st := &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
			{Type: "RuntimeReady", Status: true},
			{Type: "NetworkReady", Status: false, Reason: "NetworkPluginNotReady", Message: "no usable CNI network config"},
		}},
		Info: map[string]string{
			"cni":    `{"confDir":"/etc/cni/net.d","binDirs":["/opt/cni/bin","/usr/lib/cni"],"reason":"no usable CNI network config"}`,
			"config": `{"root":"/var/lib/husk","cni":{"default_network":false}}`,
		},
	}
	var b bytes.Buffer
	if err := renderInfo(&b, &runtimeapi.VersionResponse{RuntimeName: "husk", RuntimeVersion: "1.2.3", RuntimeApiVersion: "v1"}, st,
		&runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: runtimeapi.CgroupDriver_SYSTEMD}}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"Runtime:", "husk 1.2.3 (CRI v1)", "Cgroup driver:  systemd",
		"  NetworkReady  false  NetworkPluginNotReady: no usable CNI network config\n",
		"  plugin dirs  /opt/cni/bin, /usr/lib/cni\n",
		"  network      none: no usable CNI network config\n",
		"Config:\n  cni:\n    default_network: false\n  root: /var/lib/husk\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("info lacks %q:\n%s", want, out)
		}
	}
}
