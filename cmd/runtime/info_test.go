package main

import (
	"bytes"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

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
