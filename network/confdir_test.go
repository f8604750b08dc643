package network

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeBinDir holds empty executables named like the plugins, so that config
// selection (which checks that plugin binaries exist) runs without root.
func fakeBinDir(t *testing.T, plugins ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range plugins {
		if err := os.WriteFile(filepath.Join(dir, p), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func newTestManagerNoRoot(t *testing.T, defaultNet bool) (*Manager, string) {
	t.Helper()
	root := t.TempDir()
	confDir := filepath.Join(root, "net.d")
	m, err := New(Config{
		ConfDir:        confDir,
		BinDirs:        []string{fakeBinDir(t, "bridge", "portmap", "host-local", "flannel")},
		CacheDir:       filepath.Join(root, "cache"),
		NetnsDir:       filepath.Join(root, "netns"),
		IPAMDataDir:    filepath.Join(root, "ipam"),
		DefaultNetwork: defaultNet,
		BridgeName:     "hktest0",
		Subnet:         "10.199.0.0/24",
	})
	if err != nil {
		t.Fatal(err)
	}
	return m, confDir
}

const operatorConfList = `{
  "cniVersion": "1.0.0",
  "name": "operator-net",
  "plugins": [{"type": "flannel", "delegate": {"isDefaultGateway": true}}]
}`

func TestStatusEmptyDirNotReady(t *testing.T) {
	m, confDir := newTestManagerNoRoot(t, false)
	ready, reason := m.Status()
	if ready {
		t.Fatal("Status: ready with no CNI config")
	}
	if !strings.Contains(reason, confDir) {
		t.Errorf("Status reason %q does not name the config dir %s", reason, confDir)
	}
	// The dir exists but is empty: same answer.
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if ready, reason := m.Status(); ready || !strings.Contains(reason, confDir) {
		t.Errorf("Status on empty dir = %v, %q; want not ready naming %s", ready, reason, confDir)
	}
	if _, err := os.Stat(filepath.Join(confDir, defaultConfName)); err == nil {
		t.Error("default config written although DefaultNetwork is off")
	}
}

func TestStatusMissingPluginNotReady(t *testing.T) {
	m, confDir := newTestManagerNoRoot(t, false)
	writeFile(t, filepath.Join(confDir, "10-x.conflist"),
		`{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"no-such-plugin"}]}`)
	ready, reason := m.Status()
	if ready || !strings.Contains(reason, "no-such-plugin") {
		t.Errorf("Status = %v, %q; want not ready naming the missing plugin", ready, reason)
	}
}

func TestDefaultNetworkWritten(t *testing.T) {
	m, confDir := newTestManagerNoRoot(t, true)
	ready, reason := m.Status()
	if !ready {
		t.Fatalf("Status not ready with DefaultNetwork: %s", reason)
	}
	data, err := os.ReadFile(filepath.Join(confDir, defaultConfName))
	if err != nil {
		t.Fatalf("default config not written: %v", err)
	}
	var got struct {
		CNIVersion string `json:"cniVersion"`
		Name       string `json:"name"`
		Plugins    []struct {
			Type         string          `json:"type"`
			Bridge       string          `json:"bridge"`
			IsGateway    bool            `json:"isGateway"`
			IPMasq       bool            `json:"ipMasq"`
			HairpinMode  bool            `json:"hairpinMode"`
			Capabilities map[string]bool `json:"capabilities"`
			IPAM         struct {
				Type    string                `json:"type"`
				Ranges  [][]map[string]string `json:"ranges"`
				Routes  []map[string]string   `json:"routes"`
				DataDir string                `json:"dataDir"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("default config: %v\n%s", err, data)
	}
	if got.CNIVersion != "1.0.0" || got.Name != DefaultNetworkName || len(got.Plugins) != 2 {
		t.Fatalf("default config header/plugins wrong:\n%s", data)
	}
	br, pm := got.Plugins[0], got.Plugins[1]
	if br.Type != "bridge" || br.Bridge != "hktest0" || !br.IsGateway || !br.IPMasq || !br.HairpinMode {
		t.Errorf("bridge plugin wrong: %+v", br)
	}
	if br.IPAM.Type != "host-local" || len(br.IPAM.Ranges) != 1 || br.IPAM.Ranges[0][0]["subnet"] != "10.199.0.0/24" ||
		len(br.IPAM.Routes) != 1 || br.IPAM.Routes[0]["dst"] != "0.0.0.0/0" || br.IPAM.DataDir != m.cfg.IPAMDataDir {
		t.Errorf("ipam wrong: %+v", br.IPAM)
	}
	if pm.Type != "portmap" || !pm.Capabilities["portMappings"] {
		t.Errorf("portmap plugin wrong: %+v", pm)
	}
	list, file, err := m.loadNetwork()
	if err != nil || list.Name != DefaultNetworkName || filepath.Base(file) != defaultConfName {
		t.Errorf("selected %v %q, %v; want the default network", list, file, err)
	}
}

func TestOperatorConfigWins(t *testing.T) {
	// An operator config present before husk's first look: ours is not
	// written at all.
	m, confDir := newTestManagerNoRoot(t, true)
	writeFile(t, filepath.Join(confDir, "10-operator.conflist"), operatorConfList)
	if ready, reason := m.Status(); !ready {
		t.Fatalf("not ready: %s", reason)
	}
	if _, err := os.Stat(filepath.Join(confDir, defaultConfName)); err == nil {
		t.Error("default config written although an operator config exists")
	}
	list, _, err := m.loadNetwork()
	if err != nil || list.Name != "operator-net" {
		t.Fatalf("selected %v, %v; want operator-net", list, err)
	}

	// An operator config added after ours exists, even with a name that
	// sorts after ours, wins.
	m2, confDir2 := newTestManagerNoRoot(t, true)
	if ready, _ := m2.Status(); !ready {
		t.Fatal("default network not ready")
	}
	writeFile(t, filepath.Join(confDir2, "zz-operator.conflist"), operatorConfList)
	list, file, err := m2.loadNetwork()
	if err != nil || list.Name != "operator-net" || filepath.Base(file) != "zz-operator.conflist" {
		t.Fatalf("selected %v %q, %v; want operator-net", list, file, err)
	}
}

func TestConfigSelectionLexicalFirstValid(t *testing.T) {
	m, confDir := newTestManagerNoRoot(t, false)
	writeFile(t, filepath.Join(confDir, "05-broken.conflist"), `{"cniVersion":`)
	writeFile(t, filepath.Join(confDir, "20-b.conflist"), strings.Replace(operatorConfList, "operator-net", "b", 1))
	// A single-plugin .conf is wrapped into a list.
	writeFile(t, filepath.Join(confDir, "10-a.conf"), `{"cniVersion":"1.0.0","name":"a","type":"bridge"}`)
	list, file, err := m.loadNetwork()
	if err != nil {
		t.Fatal(err)
	}
	if list.Name != "a" || filepath.Base(file) != "10-a.conf" || len(list.Plugins) != 1 {
		t.Errorf("selected %q from %s; want network a from 10-a.conf", list.Name, file)
	}
}

func TestUpdatePodCIDRRewritesDefault(t *testing.T) {
	m, confDir := newTestManagerNoRoot(t, true)
	if ready, reason := m.Status(); !ready {
		t.Fatal(reason)
	}
	if err := m.UpdatePodCIDR("10.244.3.0/24,fd00:10:244:3::/64"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(confDir, defaultConfName))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for _, want := range []string{`"subnet": "10.244.3.0/24"`, `"subnet": "fd00:10:244:3::/64"`, `"dst": "::/0"`} {
		if !strings.Contains(s, want) {
			t.Errorf("default config after UpdatePodCIDR lacks %s:\n%s", want, s)
		}
	}
	if strings.Contains(s, "10.199.0.0/24") {
		t.Errorf("default config still has the old subnet:\n%s", s)
	}
	// A restarted daemon keeps the pod CIDR kubelet gave (kubelet does not
	// send it again) instead of rewriting the config back to Subnet.
	m1, err := New(m.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ready, reason := m1.Status(); !ready {
		t.Fatal(reason)
	}
	if again, _ := os.ReadFile(filepath.Join(confDir, defaultConfName)); string(again) != s {
		t.Errorf("default config after restart =\n%s\nwant\n%s", again, s)
	}
	if err := m.UpdatePodCIDR("not-a-cidr"); err == nil {
		t.Error("UpdatePodCIDR accepted an invalid CIDR")
	}

	// With an operator config and no default file, nothing is written.
	m2, confDir2 := newTestManagerNoRoot(t, true)
	writeFile(t, filepath.Join(confDir2, "10-operator.conflist"), operatorConfList)
	if err := m2.UpdatePodCIDR("10.244.4.0/24"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(confDir2, defaultConfName)); err == nil {
		t.Error("UpdatePodCIDR wrote the default config next to an operator config")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := New(Config{BridgeName: "a-very-long-bridge-name"}); err == nil {
		t.Error("New accepted a bridge name over 15 bytes")
	}
	if _, err := New(Config{Subnet: "10.0.0.0"}); err == nil {
		t.Error("New accepted a subnet without a prefix length")
	}
}

func TestRuntimeConf(t *testing.T) {
	rt := runtimeConf(PodNetwork{
		PodID: "pod1", Name: "web", Namespace: "ns1", UID: "u-1",
		PortMappings: []PortMapping{
			{HostPort: 8080, ContainerPort: 80, Protocol: "TCP"},
			{HostPort: 0, ContainerPort: 9090}, // not published
			{HostPort: 5353, ContainerPort: 53, Protocol: "udp", HostIP: "127.0.0.1"},
		},
	}, "/run/x/netns/pod1")
	if rt.ContainerID != "pod1" || rt.IfName != "eth0" || rt.NetNS != "/run/x/netns/pod1" {
		t.Errorf("runtime conf = %+v", rt)
	}
	want := [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "ns1"}, {"K8S_POD_NAME", "web"},
		{"K8S_POD_INFRA_CONTAINER_ID", "pod1"}, {"K8S_POD_UID", "u-1"}}
	if len(rt.Args) != len(want) {
		t.Fatalf("args = %v, want %v", rt.Args, want)
	}
	for i := range want {
		if rt.Args[i] != want[i] {
			t.Errorf("arg %d = %v, want %v", i, rt.Args[i], want[i])
		}
	}
	b, _ := json.Marshal(rt.CapabilityArgs)
	const wantPM = `{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"},{"hostPort":5353,"containerPort":53,"protocol":"udp","hostIP":"127.0.0.1"}]}`
	if string(b) != wantPM {
		t.Errorf("capability args = %s\nwant %s", b, wantPM)
	}
	if rt := runtimeConf(PodNetwork{PodID: "p"}, ""); rt.CapabilityArgs != nil {
		t.Errorf("capability args without port mappings = %v, want none", rt.CapabilityArgs)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
