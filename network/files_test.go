package network

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteResolvConfFromDNSConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	err := WriteResolvConf(discard, p, []string{"10.96.0.10", "fd00::a"},
		[]string{"ns1.svc.cluster.local", "svc.cluster.local", "cluster.local"}, []string{"ndots:5", "edns0"})
	if err != nil {
		t.Fatal(err)
	}
	const want = "nameserver 10.96.0.10\nnameserver fd00::a\n" +
		"search ns1.svc.cluster.local svc.cluster.local cluster.local\n" +
		"options ndots:5 edns0\n"
	if got := readFile(t, p); got != want {
		t.Errorf("resolv.conf =\n%s\nwant\n%s", got, want)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("resolv.conf mode = %v, %v; want 0644", fi.Mode(), err)
	}
	if err := WriteResolvConf(discard, p, []string{"1.2.3.4\nnameserver 6.6.6.6"}, nil, nil); err == nil {
		t.Error("WriteResolvConf accepted a value with a newline")
	}
	// Only options (DNSPolicy None with just options) is written as given.
	if err := WriteResolvConf(discard, p, nil, nil, []string{"ndots:2"}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, p); got != "options ndots:2\n" {
		t.Errorf("resolv.conf = %q, want only the options line", got)
	}
}

func TestWriteResolvConfCopiesHostDroppingLoopback(t *testing.T) {
	dir := t.TempDir()
	host := filepath.Join(dir, "host-resolv.conf")
	writeFile(t, host, "# host\nnameserver 127.0.0.53\nnameserver 10.255.255.53\nnameserver ::1\nsearch example.org\noptions edns0\n")
	p := filepath.Join(dir, "resolv.conf")
	if err := writeResolvConf(discard, p, host, "", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	const want = "# host\nnameserver 10.255.255.53\nsearch example.org\noptions edns0\n"
	if got := readFile(t, p); got != want {
		t.Errorf("resolv.conf =\n%s\nwant\n%s", got, want)
	}

	// Only loopback servers (systemd-resolved stub): the upstream file is used.
	writeFile(t, host, "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n")
	upstream := filepath.Join(dir, "upstream.conf")
	writeFile(t, upstream, "nameserver 192.0.2.53\nsearch .\n")
	if err := writeResolvConf(discard, p, host, upstream, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, p); got != "nameserver 192.0.2.53\nsearch .\n" {
		t.Errorf("resolv.conf with stub resolver = %q, want the upstream servers", got)
	}
	// No upstream file: no nameserver at all, rather than an unreachable one.
	if err := writeResolvConf(discard, p, host, filepath.Join(dir, "missing"), nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, p); got != "options edns0 trust-ad\nsearch .\n" {
		t.Errorf("resolv.conf = %q, want the stub's lines without its nameserver", got)
	}
	// No host file: an empty file, so the bind mount still has a source.
	if err := writeResolvConf(discard, p, filepath.Join(dir, "none"), "", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, p); got != "" {
		t.Errorf("resolv.conf without host file = %q, want empty", got)
	}
}

func TestWriteHostsAndHostname(t *testing.T) {
	dir := t.TempDir()
	hosts := filepath.Join(dir, "hosts")
	if err := WriteHosts(hosts, "web-0", []string{"10.77.0.5", "fd00::5"}); err != nil {
		t.Fatal(err)
	}
	const want = "# Kubernetes-managed hosts file.\n" +
		"127.0.0.1\tlocalhost\n" +
		"::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\n" +
		"fe00::0\tip6-mcastprefix\n" +
		"fe00::1\tip6-allnodes\n" +
		"fe00::2\tip6-allrouters\n" +
		"10.77.0.5\tweb-0\n" +
		"fd00::5\tweb-0\n"
	if got := readFile(t, hosts); got != want {
		t.Errorf("hosts =\n%s\nwant\n%s", got, want)
	}
	if err := WriteHosts(hosts, "web-0", []string{"not-an-ip"}); err == nil {
		t.Error("WriteHosts accepted a bad IP")
	}
	if got := readFile(t, hosts); got != want {
		t.Error("a failed WriteHosts changed the file")
	}

	hn := filepath.Join(dir, "hostname")
	if err := WriteHostname(hn, "web-0"); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, hn); got != "web-0\n" {
		t.Errorf("hostname = %q", got)
	}
	if err := WriteHostname(hn, "bad name"); err == nil {
		t.Error("WriteHostname accepted a name with a space")
	}
	// No temp files are left next to the written ones.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("dir holds %v, want only hosts and hostname", names)
	}
}

// discard is the logger of the tests' writes.
var discard = slog.New(slog.DiscardHandler)
