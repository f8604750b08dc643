package doctor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func byName(cs []Check, name string) Check {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return Check{Name: name, Status: "missing"}
}

func TestKernelChecks(t *testing.T) {
	n := newFakeNode(t)
	p := n.host.Proc
	n.write(filepath.Join(p, "filesystems"), "nodev\tsysfs\nnodev\toverlay\n\text4\n")
	for _, ns := range []string{"mnt", "uts", "ipc", "pid", "net", "user", "cgroup"} {
		n.write(filepath.Join(p, "self", "ns", ns), "")
	}
	n.write(filepath.Join(p, "sys", "user", "max_user_namespaces"), "1000\n")
	n.write(filepath.Join(p, "self", "status"), "Name:\tx\nSeccomp:\t0\nSeccomp_filters:\t0\n")
	n.write(filepath.Join(n.host.Sys, "module", "apparmor", "parameters", "enabled"), "Y\n")
	// A pure v2 host whose root has every controller husk uses.
	v2 := n.mkdir(filepath.Join(n.dir, "cg2"))
	n.write(filepath.Join(v2, "cgroup.controllers"), "cpuset cpu io memory hugetlb pids rdma misc\n")
	n.mount(v2, "cgroup2", "rw")

	cs := KernelChecks(n.host)
	for _, c := range cs {
		want := OK
		if c.Name == "kernel/apparmor" {
			want = Info
		}
		if c.Status != want {
			t.Errorf("%s: %s %q, want %s", c.Name, c.Status, c.Reason, want)
		}
	}
	if c := byName(cs, "kernel/cgroups"); !strings.Contains(c.Reason, "v2") {
		t.Errorf("cgroups: %q does not name v2", c.Reason)
	}
	if c := byName(cs, "kernel/apparmor"); c.Reason != "enabled" {
		t.Errorf("apparmor: %q", c.Reason)
	}

	// Now a host without overlay, memory, user namespaces or seccomp.
	n.write(filepath.Join(p, "filesystems"), "nodev\tsysfs\n")
	n.write(filepath.Join(v2, "cgroup.controllers"), "cpuset cpu pids\n")
	n.write(filepath.Join(p, "sys", "user", "max_user_namespaces"), "0\n")
	n.write(filepath.Join(p, "self", "status"), "Name:\tx\n")
	os.Remove(filepath.Join(p, "self", "ns", "net"))
	cs = KernelChecks(n.host)
	for name, want := range map[string]Status{
		"kernel/overlayfs": Warn, "kernel/cgroups": Fail, "kernel/userns": Warn, "kernel/seccomp": Fail, "kernel/namespaces": Fail,
	} {
		if c := byName(cs, name); c.Status != want {
			t.Errorf("%s: %s %q, want %s", name, c.Status, c.Reason, want)
		}
	}
	if c := byName(cs, "kernel/cgroups"); !strings.Contains(c.Reason, "missing: memory") {
		t.Errorf("cgroups reason %q does not name memory", c.Reason)
	}

	// v1 hybrid: controllers from the hierarchies' options.
	n2 := newFakeNode(t)
	for _, ctl := range []string{"cpu,cpuacct", "memory", "pids", "cpuset"} {
		n2.mount(n2.mkdir(filepath.Join(n2.dir, "cg", ctl)), "cgroup", "rw,"+ctl)
	}
	n2.mount(n2.mkdir(filepath.Join(n2.dir, "cg", "unified")), "cgroup2", "rw")
	if c := cgroupCheck(n2.host); c.Status != Warn || !strings.Contains(c.Reason, "hybrid") || !strings.Contains(c.Reason, "no hugetlb") {
		t.Errorf("hybrid without hugetlb: %s %q", c.Status, c.Reason)
	}
}

func TestCNIChecks(t *testing.T) {
	dir := t.TempDir()
	conf, bin := filepath.Join(dir, "net.d"), filepath.Join(dir, "bin")
	os.MkdirAll(conf, 0o755)
	os.MkdirAll(bin, 0o755)
	for _, p := range []string{"bridge", "portmap"} {
		os.WriteFile(filepath.Join(bin, p), []byte("#!/bin/sh\n"), 0o755)
	}
	cfg := Config{CNIConfDir: conf, CNIBinDirs: []string{bin}, Bridge: "hk0", DefaultNetwork: true}

	// No config: husk writes its own, but host-local is missing.
	c := CNIChecks(cfg)
	if len(c) != 1 || c[0].Status != Fail || !strings.Contains(c[0].Reason, "host-local") {
		t.Fatalf("empty dir, host-local missing: %+v", c)
	}
	cfg.DefaultNetwork = false
	if c := CNIChecks(cfg); c[0].Status != Fail || !strings.Contains(c[0].Reason, "no usable network") {
		t.Fatalf("empty dir, no default network: %+v", c)
	}

	// A list whose IPAM plugin is missing is skipped with a warning; a
	// valid one after it is the network pods join.
	list := `{"cniVersion":"1.0.0","name":"%s","plugins":[{"type":"bridge","ipam":{"type":"%s"}},{"type":"portmap"}]}`
	os.WriteFile(filepath.Join(conf, "10-a.conflist"), []byte(strings.ReplaceAll(strings.Replace(list, "%s", "a", 1), "%s", "dhcp")), 0o644)
	os.WriteFile(filepath.Join(conf, "20-b.conflist"), []byte(strings.ReplaceAll(strings.Replace(list, "%s", "b", 1), "%s", "host-local")), 0o644)
	os.WriteFile(filepath.Join(bin, "host-local"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(conf, "30-c.conf"), []byte("{not json"), 0o644)
	c = CNIChecks(cfg)
	if len(c) != 3 {
		t.Fatalf("want a warning for 10-a and 30-c and ok for 20-b, got %+v", c)
	}
	if c[0].Status != Warn || !strings.Contains(c[0].Reason, "dhcp") {
		t.Errorf("10-a: %+v", c[0])
	}
	if c[1].Status != OK || !strings.Contains(c[1].Reason, `network "b"`) || !strings.Contains(c[1].Reason, "host-local") {
		t.Errorf("20-b: %+v", c[1])
	}
	if c[2].Status != Warn || !strings.Contains(c[2].Reason, "30-c.conf") {
		t.Errorf("30-c: %+v", c[2])
	}
}

func TestRegistryChecks(t *testing.T) {
	dir := t.TempDir()
	certs, auth := filepath.Join(dir, "certs.d"), filepath.Join(dir, "auth.json")
	cfg := Config{RegistryConfigPath: certs, AuthFile: auth}
	c := RegistryChecks(cfg)
	if c[0].Status != OK || c[1].Status != OK {
		t.Fatalf("nothing configured: %+v", c)
	}

	os.MkdirAll(filepath.Join(certs, "docker.io"), 0o755)
	os.WriteFile(filepath.Join(certs, "docker.io", "hosts.toml"), []byte("server = \"https://registry-1.docker.io\"\n[host.\"http://127.0.0.1:5000\"]\ncapabilities = [\"pull\"]\n"), 0o644)
	os.WriteFile(auth, []byte(`{"auths":{"quay.io":{"auth":"dTpw"}}}`), 0o600)
	c = RegistryChecks(cfg)
	if c[0].Status != OK || !strings.Contains(c[0].Reason, "1 hosts.toml file") {
		t.Errorf("good hosts.toml: %+v", c[0])
	}
	if c[1].Status != OK || !strings.Contains(c[1].Reason, "1 entry") {
		t.Errorf("good auth file: %+v", c[1])
	}

	os.MkdirAll(filepath.Join(certs, "quay.io"), 0o755)
	os.WriteFile(filepath.Join(certs, "quay.io", "hosts.toml"), []byte("[host.\"http://m\"\n"), 0o644)
	os.WriteFile(auth, []byte(`{"auths":`), 0o644)
	c = RegistryChecks(cfg)
	if c[0].Status != Fail || !strings.Contains(c[0].Reason, filepath.Join(certs, "quay.io", "hosts.toml")) {
		t.Errorf("broken hosts.toml: %+v", c[0])
	}
	if c[1].Status != Fail {
		t.Errorf("broken auth file: %+v", c[1])
	}
	os.WriteFile(auth, []byte(`{"auths":{}}`), 0o644)
	os.Chmod(auth, 0o644) // WriteFile keeps an existing file's mode
	if c := authFileCheck(auth); c.Status != Warn || !strings.Contains(c.Reason, "chmod 600") {
		t.Errorf("world-readable auth file: %+v", c)
	}
	if c := authFileCheck(""); c.Status != Info {
		t.Errorf("auth file off: %+v", c)
	}
}
