package kubepod

import (
	"bufio"
	"io"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The limits kubelet applies to a pod's resolv.conf (pkg/kubelet/network/dns).
const (
	maxNameservers = 3
	maxSearches    = 32
)

// ParseResolvConf reads a resolv.conf into the DNS config of a pod with
// dnsPolicy Default.
func ParseResolvConf(r io.Reader) (*runtimeapi.DNSConfig, error) {
	cfg := &runtimeapi.DNSConfig{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			cfg.Servers = append(cfg.Servers, f[1])
		case "search":
			// The last search line wins, as in the resolver.
			cfg.Searches = append([]string{}, f[1:]...)
		case "options":
			cfg.Options = append(cfg.Options, f[1:]...)
		}
	}
	return cfg, sc.Err()
}

// OnlyLoopbackServers reports whether every nameserver of cfg is a
// loopback address (a local stub resolver such as systemd-resolved's),
// which a pod in its own network namespace cannot reach.
func OnlyLoopbackServers(cfg *runtimeapi.DNSConfig) bool {
	if len(cfg.GetServers()) == 0 {
		return false
	}
	for _, s := range cfg.Servers {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.IsLoopback() {
			return false
		}
	}
	return true
}

// dnsConfig is kubelet's GetPodDNS without a cluster: ClusterFirst has no
// cluster DNS to point at, so it falls back to the node's resolv.conf
// (what kubelet itself does when it has no clusterDNS configured).
func (t *translator) dnsConfig(host *runtimeapi.DNSConfig) *runtimeapi.DNSConfig {
	pod, ws := t.pod, &t.ws
	cfg := &runtimeapi.DNSConfig{}
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = corev1.DNSClusterFirst
	}
	switch policy {
	case corev1.DNSNone:
	case corev1.DNSDefault:
		cfg = cloneDNS(host)
	case corev1.DNSClusterFirstWithHostNet, corev1.DNSClusterFirst:
		if !pod.Spec.HostNetwork || policy == corev1.DNSClusterFirstWithHostNet {
			ws.add("spec.dnsPolicy", string(policy)+" needs a cluster's DNS; using the node's resolv.conf (dnsPolicy Default)")
		}
		cfg = cloneDNS(host)
	default:
		ws.add("spec.dnsPolicy", "unknown policy "+string(policy)+"; using the node's resolv.conf (dnsPolicy Default)")
		cfg = cloneDNS(host)
	}
	if pc := pod.Spec.DNSConfig; pc != nil {
		cfg.Servers = appendUnique(cfg.Servers, pc.Nameservers...)
		cfg.Searches = appendUnique(cfg.Searches, pc.Searches...)
		for _, o := range pc.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			// A pod's option replaces the node's option of the same name.
			cfg.Options = slices.DeleteFunc(cfg.Options, func(s string) bool { return strings.SplitN(s, ":", 2)[0] == o.Name })
			cfg.Options = append(cfg.Options, opt)
		}
	}
	if len(cfg.Servers) > maxNameservers {
		ws.add("spec.dnsConfig.nameservers", "more than 3 nameservers; the first 3 are used")
		cfg.Servers = cfg.Servers[:maxNameservers]
	}
	if len(cfg.Searches) > maxSearches {
		ws.add("spec.dnsConfig.searches", "more than 32 search domains; the first 32 are used")
		cfg.Searches = cfg.Searches[:maxSearches]
	}
	return cfg
}

func cloneDNS(c *runtimeapi.DNSConfig) *runtimeapi.DNSConfig {
	if c == nil {
		return &runtimeapi.DNSConfig{}
	}
	return &runtimeapi.DNSConfig{
		Servers:  slices.Clone(c.Servers),
		Searches: slices.Clone(c.Searches),
		Options:  slices.Clone(c.Options),
	}
}

func appendUnique(list []string, more ...string) []string {
	for _, m := range more {
		if !slices.Contains(list, m) {
			list = append(list, m)
		}
	}
	return list
}
