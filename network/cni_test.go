package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"crypto/rand"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

const debianCNIDir = "/usr/lib/cni"

// rootCNIManager returns a Manager on the real plugins with a bridge and
// subnet unique to this test, all state in temp dirs, and a cleanup that
// deletes the bridge even when the test fails.
func rootCNIManager(t *testing.T) (m *Manager, bridge string, subnet *net.IPNet) {
	t.Helper()
	requireRoot(t)
	for _, p := range []string{"bridge", "host-local", "portmap"} {
		if _, err := os.Stat(filepath.Join(debianCNIDir, p)); err != nil {
			t.Skipf("CNI plugin %s not installed: %v", p, err)
		}
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("iptables not installed")
	}
	bridge = "hk" + randHex(t, 5) // 12 bytes, under IFNAMSIZ
	x, err := rand.Int(rand.Reader, big.NewInt(250))
	if err != nil {
		t.Fatal(err)
	}
	_, subnet, _ = net.ParseCIDR(fmt.Sprintf("10.199.%d.0/24", x.Int64()+2))
	root := t.TempDir()
	m, err = New(Config{
		ConfDir:        filepath.Join(root, "net.d"),
		BinDirs:        []string{debianCNIDir},
		CacheDir:       filepath.Join(root, "cache"),
		NetnsDir:       filepath.Join(root, "netns"),
		IPAMDataDir:    filepath.Join(root, "ipam"),
		DefaultNetwork: true,
		BridgeName:     bridge,
		Subnet:         subnet.String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(bridge); err == nil {
			if err := netlink.LinkDel(l); err != nil {
				t.Errorf("deleting bridge %s: %v", bridge, err)
			}
		}
	})
	return m, bridge, subnet
}

// startPod creates a netns and runs Setup, registering cleanups (Teardown,
// then RemoveNetns) that run even if the test fails.
func startPod(t *testing.T, m *Manager, pms []PortMapping) (PodNetwork, Result) {
	t.Helper()
	podID := "hktest-" + randHex(t, 8)
	path, err := m.CreateNetns(podID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveNetns(path) })
	pn := PodNetwork{PodID: podID, Name: "web", Namespace: "default", UID: "uid-" + podID, NetnsPath: path, PortMappings: pms}
	t.Cleanup(func() { m.Teardown(context.Background(), pn) }) // runs before RemoveNetns
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := m.Setup(ctx, pn)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	return pn, res
}

// vethsOn lists the veth links enslaved to bridge.
func vethsOn(t *testing.T, bridge string) []string {
	t.Helper()
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		t.Fatal(err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		if l.Type() == "veth" && l.Attrs().MasterIndex == br.Attrs().Index {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}

// natRulesFor lists the iptables nat rules that name id (portmap's DNAT
// chains and bridge's masquerade chain carry it in a comment).
func natRulesFor(t *testing.T, id string) []string {
	t.Helper()
	out, err := exec.Command("iptables", "-w", "-t", "nat", "-S").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables -t nat -S: %v\n%s", err, out)
	}
	var rules []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, id) {
			rules = append(rules, l)
		}
	}
	return rules
}

func leaseFile(m *Manager, ip string) string {
	return filepath.Join(m.cfg.IPAMDataDir, DefaultNetworkName, ip)
}

func assertNothingLeft(t *testing.T, m *Manager, bridge string, pn PodNetwork, ip string) {
	t.Helper()
	if _, err := os.Stat(leaseFile(m, ip)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("IP lease %s still there (err %v)", leaseFile(m, ip), err)
	}
	// A veth whose peer was in a netns that just lost its last reference
	// goes away with the netns, which the kernel tears down asynchronously
	// (cleanup_net workqueue): give it a moment.
	var v []string
	start := time.Now()
	defer func() { t.Logf("veths gone after %v", time.Since(start)) }()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if v = vethsOn(t, bridge); len(v) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(v) != 0 {
		t.Errorf("veths left on %s: %v", bridge, v)
	}
	if r := natRulesFor(t, pn.PodID); len(r) != 0 {
		t.Errorf("iptables nat rules left for %s:\n%s", pn.PodID, strings.Join(r, "\n"))
	}
	if atts, err := m.cni.GetCachedAttachments(pn.PodID); err != nil || len(atts) != 0 {
		t.Errorf("CNI cache for %s: %d entries, %v; want none", pn.PodID, len(atts), err)
	}
}

func TestSetupTeardownRealPlugins(t *testing.T) {
	m, bridge, subnet := rootCNIManager(t)
	pn, res := startPod(t, m, []PortMapping{{HostPort: 31000 + int32(len(t.Name())), ContainerPort: 80, Protocol: "TCP"}})

	if len(res.IPs) != 1 {
		t.Fatalf("IPs = %v, want one", res.IPs)
	}
	ip := net.ParseIP(res.IPs[0])
	if ip == nil || !subnet.Contains(ip) {
		t.Fatalf("pod IP %v not in %v", res.IPs[0], subnet)
	}
	if res.Interface != "eth0" || len(res.Raw) == 0 {
		t.Errorf("Interface = %q, raw %d bytes; want eth0 and the raw result", res.Interface, len(res.Raw))
	}
	if v := vethsOn(t, bridge); len(v) != 1 {
		t.Errorf("veths on %s = %v, want one", bridge, v)
	}
	if lease, err := os.ReadFile(leaseFile(m, res.IPs[0])); err != nil || !strings.Contains(string(lease), pn.PodID) {
		t.Errorf("lease file for %s: %q, %v; want it to name the pod", res.IPs[0], lease, err)
	}
	if r := natRulesFor(t, pn.PodID); len(r) == 0 {
		t.Error("no iptables nat rules for the pod after ADD (portmap/ipMasq)")
	}
	// eth0 in the pod has the address.
	err := ns.WithNetNSPath(pn.NetnsPath, func(ns.NetNS) error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if a.IP.Equal(ip) {
				return nil
			}
		}
		return fmt.Errorf("eth0 addresses %v lack %v", addrs, ip)
	})
	if err != nil {
		t.Errorf("in pod netns: %v", err)
	}

	ctx := context.Background()
	if err := m.Teardown(ctx, pn); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	assertNothingLeft(t, m, bridge, pn, res.IPs[0])

	if err := m.Teardown(ctx, pn); err != nil {
		t.Errorf("second Teardown: %v", err)
	}
	if err := RemoveNetns(pn.NetnsPath); err != nil {
		t.Fatal(err)
	}
	if err := m.Teardown(ctx, pn); err != nil {
		t.Errorf("Teardown with the netns gone: %v", err)
	}
	assertNothingLeft(t, m, bridge, pn, res.IPs[0])
}

// A daemon restart: a fresh Manager on the same dirs tears down a pod set
// up by another, from libcni's cache, even after the default network's
// subnet changed (UpdatePodCIDR) in between.
func TestTeardownAfterRestartUsesCache(t *testing.T) {
	m, bridge, _ := rootCNIManager(t)
	pn, res := startPod(t, m, []PortMapping{{HostPort: 32000 + int32(len(t.Name())), ContainerPort: 8080}})

	m2, err := New(m.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.UpdatePodCIDR("10.198.0.0/24"); err != nil {
		t.Fatal(err)
	}
	if err := m2.Teardown(context.Background(), pn); err != nil {
		t.Fatalf("Teardown from a new Manager: %v", err)
	}
	assertNothingLeft(t, m2, bridge, pn, res.IPs[0])
}

// Teardown whose first DEL comes after the netns is gone still releases
// the lease, portmap's rules (CNI spec: DEL tolerates a missing netns) and,
// through the stand-in netns, bridge's masquerade chain.
func TestTeardownNetnsGoneFirst(t *testing.T) {
	m, bridge, _ := rootCNIManager(t)
	pn, res := startPod(t, m, []PortMapping{{HostPort: 33000 + int32(len(t.Name())), ContainerPort: 80}})
	if r := natRulesFor(t, pn.PodID); len(r) == 0 {
		t.Fatal("no nat rules after ADD")
	}
	if err := RemoveNetns(pn.NetnsPath); err != nil {
		t.Fatal(err)
	}
	if err := m.Teardown(context.Background(), pn); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	assertNothingLeft(t, m, bridge, pn, res.IPs[0])
	if got := mountsUnder(t, m.cfg.NetnsDir); len(got) != 0 {
		t.Errorf("mounts left under %s: %v", m.cfg.NetnsDir, got)
	}
	if ents, _ := os.ReadDir(m.cfg.NetnsDir); len(ents) != 0 {
		t.Errorf("files left in %s: %d", m.cfg.NetnsDir, len(ents))
	}
	if err := m.Teardown(context.Background(), pn); err != nil {
		t.Errorf("second Teardown: %v", err)
	}
}

// A failed ADD is undone by Setup itself: bridge succeeds (veth, lease,
// masquerade rules), then a later plugin in the list fails.
func TestSetupFailureLeavesNothing(t *testing.T) {
	m, bridge, subnet := rootCNIManager(t)
	failBin := t.TempDir()
	// A plugin that fails ADD with a CNI error and accepts DEL.
	writeFile(t, filepath.Join(failBin, "hkfail"), "#!/bin/sh\n"+
		"if [ \"$CNI_COMMAND\" = ADD ]; then\n"+
		"  echo '{\"cniVersion\":\"1.0.0\",\"code\":999,\"msg\":\"injected failure\"}'; exit 1\n"+
		"fi\nexit 0\n")
	if err := os.Chmod(filepath.Join(failBin, "hkfail"), 0o755); err != nil {
		t.Fatal(err)
	}
	m.cfg.BinDirs = append(m.cfg.BinDirs, failBin)
	m.cni.Path = m.cfg.BinDirs
	writeFile(t, filepath.Join(m.cfg.ConfDir, "10-failing.conflist"), fmt.Sprintf(`{
  "cniVersion": "1.0.0", "name": "failing",
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "dataDir": %q}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "hkfail"}
  ]}`, bridge, subnet, m.cfg.IPAMDataDir))

	podID := "hktest-" + randHex(t, 8)
	path, err := m.CreateNetns(podID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveNetns(path) })
	pn := PodNetwork{PodID: podID, Name: "x", Namespace: "default", UID: "u", NetnsPath: path,
		PortMappings: []PortMapping{{HostPort: 34000 + int32(len(t.Name())), ContainerPort: 80}}}
	t.Cleanup(func() { m.Teardown(context.Background(), pn) })
	_, err = m.Setup(context.Background(), pn)
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("Setup err = %v, want the injected failure", err)
	}
	ents, _ := os.ReadDir(filepath.Join(m.cfg.IPAMDataDir, "failing"))
	for _, e := range ents {
		if net.ParseIP(e.Name()) != nil {
			t.Errorf("lease %s left after failed Setup", e.Name())
		}
	}
	if v := vethsOn(t, bridge); len(v) != 0 {
		t.Errorf("veths left: %v", v)
	}
	if r := natRulesFor(t, podID); len(r) != 0 {
		t.Errorf("nat rules left:\n%s", strings.Join(r, "\n"))
	}
	// The pod's netns is untouched apart from eth0 being gone again.
	err = ns.WithNetNSPath(path, func(ns.NetNS) error {
		if _, err := netlink.LinkByName("eth0"); err == nil {
			return errors.New("eth0 still in pod netns")
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// The host reaches a TCP listener inside the pod's netns via the pod IP.
func TestReachPodFromHost(t *testing.T) {
	m, _, _ := rootCNIManager(t)
	pn, res := startPod(t, m, nil)

	// A socket belongs to the netns of the thread that created it; ns.Do
	// runs the closure on a locked thread inside the netns, so the
	// listener lives in the pod while Accept runs on any thread.
	var ln net.Listener
	err := ns.WithNetNSPath(pn.NetnsPath, func(ns.NetNS) error {
		var err error
		ln, err = net.Listen("tcp", "0.0.0.0:8080")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello from "+pn.PodID)
			c.Close()
		}
	}()

	for _, dial := range []struct {
		name string
		fn   func() (net.Conn, error)
	}{
		{"host via pod IP", func() (net.Conn, error) {
			return net.DialTimeout("tcp", net.JoinHostPort(res.IPs[0], "8080"), 5*time.Second)
		}},
		{"DialContext in netns via loopback", func() (net.Conn, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return DialContext(ctx, pn.NetnsPath, "tcp", "127.0.0.1:8080")
		}},
	} {
		c, err := dial.fn()
		if err != nil {
			t.Errorf("%s: %v", dial.name, err)
			continue
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(b) != "hello from "+pn.PodID {
			t.Errorf("%s: read %q, %v", dial.name, b, err)
		}
	}
	// The host's own loopback has no such listener: the socket really is
	// in the pod netns, not the host's.
	if c, err := net.DialTimeout("tcp", "127.0.0.1:8080", time.Second); err == nil {
		c.Close()
		t.Log("note: something on the host's loopback listens on 8080 too")
	}
}
