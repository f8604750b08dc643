package network

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/husk-runtime/husk/atomicfile"
)

const (
	hostResolvConf = "/etc/resolv.conf"
	// systemdResolvConf lists systemd-resolved's upstream servers; it is
	// what kubelet's docs say to use as --resolv-conf on such hosts.
	systemdResolvConf = "/run/systemd/resolve/resolv.conf"
)

// WriteResolvConf writes the pod's resolv.conf from the CRI DNSConfig.
//
// log gets a warning when the pod gets no nameserver from the host.
//
// With servers, searches and options all empty (no DNSConfig, e.g. crictl
// without one; kubelet itself always fills it in) the host's
// /etc/resolv.conf is copied, like kubelet's DNSPolicy Default and
// containerd do, with one change: nameservers on a loopback address
// (systemd-resolved's 127.0.0.53, a local dnsmasq) are dropped, because the
// pod has its own netns and its loopback has no resolver. If that drops
// every nameserver, the upstream servers of systemd-resolved
// (/run/systemd/resolve/resolv.conf) are used when that file exists;
// otherwise the file is left without nameservers rather than pointing the
// pod at a public resolver the operator never chose.
func WriteResolvConf(log *slog.Logger, path string, servers, searches, options []string) error {
	return writeResolvConf(log, path, hostResolvConf, systemdResolvConf, servers, searches, options)
}

func writeResolvConf(log *slog.Logger, path, hostPath, fallbackPath string, servers, searches, options []string) error {
	var data []byte
	if len(servers) == 0 && len(searches) == 0 && len(options) == 0 {
		var err error
		data, err = hostResolv(log, hostPath, fallbackPath)
		if err != nil {
			return fmt.Errorf("network: resolv.conf for %s: %w", path, err)
		}
	} else {
		for _, list := range [][]string{servers, searches, options} {
			for _, v := range list {
				// Each value becomes a word of a line; whitespace in one
				// would inject other words or lines.
				if v == "" || strings.ContainsAny(v, " \t\r\n") {
					return fmt.Errorf("network: resolv.conf for %s: invalid DNS config value %q", path, v)
				}
			}
		}
		var b bytes.Buffer
		for _, s := range servers {
			fmt.Fprintf(&b, "nameserver %s\n", s)
		}
		if len(searches) > 0 {
			fmt.Fprintf(&b, "search %s\n", strings.Join(searches, " "))
		}
		if len(options) > 0 {
			fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
		}
		data = b.Bytes()
	}
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	return nil
}

// hostResolv returns the host's resolv.conf minus loopback nameservers
// (see WriteResolvConf). A host without one gives an empty file: the
// container still needs the bind-mount source, and libc then falls back
// to its defaults.
func hostResolv(log *slog.Logger, hostPath, fallbackPath string) ([]byte, error) {
	data, err := os.ReadFile(hostPath)
	if errors.Is(err, fs.ErrNotExist) {
		log.Warn("host has no resolv.conf; pod gets an empty one", "path", hostPath)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out, kept, dropped := dropLoopbackNameservers(data)
	if kept == 0 && dropped > 0 && fallbackPath != "" {
		if fb, err := os.ReadFile(fallbackPath); err == nil {
			if fbOut, fbKept, _ := dropLoopbackNameservers(fb); fbKept > 0 {
				return fbOut, nil
			}
		}
		log.Warn("host resolv.conf has only loopback nameservers, unreachable from a pod; pod gets none", "path", hostPath)
	}
	return out, nil
}

// dropLoopbackNameservers removes "nameserver <loopback>" lines and keeps
// every other line as it is.
func dropLoopbackNameservers(data []byte) (out []byte, kept, dropped int) {
	var b bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err == nil && a.IsLoopback() {
				dropped++
				continue
			}
			kept++
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.Bytes(), kept, dropped
}
