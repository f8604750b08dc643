package network

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"

	"github.com/husk-runtime/husk/atomicfile"
)

// WriteHostname writes the pod's /etc/hostname.
func WriteHostname(path, hostname string) error {
	if err := ValidateHostname(hostname); err != nil {
		return fmt.Errorf("network: hostname file %s: %w", path, err)
	}
	if err := atomicfile.Write(path, []byte(hostname+"\n"), 0o644); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	return nil
}

// WriteHosts writes the pod's /etc/hosts in kubelet's managed format (the
// same header and entries kubelet writes for a pod without host network),
// so that tools in the pod see what they would under any other runtime:
// localhost on both loopbacks, the IPv6 multicast names, and each pod IP
// mapped to the pod's hostname.
func WriteHosts(path, hostname string, ips []string) error {
	if err := ValidateHostname(hostname); err != nil {
		return fmt.Errorf("network: hosts file %s: %w", path, err)
	}
	var b bytes.Buffer
	b.WriteString("# Kubernetes-managed hosts file.\n")
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\n")
	b.WriteString("fe00::0\tip6-mcastprefix\n")
	b.WriteString("fe00::1\tip6-allnodes\n")
	b.WriteString("fe00::2\tip6-allrouters\n")
	for _, ip := range ips {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return fmt.Errorf("network: hosts file %s: pod IP: %w", path, err)
		}
		fmt.Fprintf(&b, "%s\t%s\n", a, hostname)
	}
	if err := atomicfile.Write(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	return nil
}

// ValidateHostname rejects what would corrupt the files or that the kernel's
// sethostname(2) would refuse (at most 64 bytes).
func ValidateHostname(h string) error {
	if h == "" || len(h) > 64 || strings.ContainsAny(h, " \t\r\n/\x00") {
		return fmt.Errorf("invalid hostname %q", h)
	}
	return nil
}
