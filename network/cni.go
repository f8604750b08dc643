package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// podIfName is the interface the pod sees; kubelet and every CRI runtime
// use eth0, and network add-ons expect it.
const podIfName = "eth0"

// cleanupTimeout bounds the DEL that Setup runs after a failed ADD. It runs
// on a context detached from the caller's, because the usual reason for a
// failed ADD is the caller's context being cancelled, and the leftover IP
// lease, veth and iptables rules must still be removed.
const cleanupTimeout = time.Minute

// PortMapping is one CRI PortMapping, passed to CNI as the portMappings
// capability (handled by the portmap plugin).
type PortMapping struct {
	HostPort      int32
	ContainerPort int32
	Protocol      string // "tcp", "udp" or "sctp"; empty means tcp
	HostIP        string // empty: all host addresses
}

// PodNetwork names a pod for CNI.
type PodNetwork struct {
	PodID, Name, Namespace, UID string
	// NetnsPath is the pod's pinned netns (CreateNetns). For Teardown it
	// may be empty or already removed.
	NetnsPath    string
	PortMappings []PortMapping
}

// Result is what CNI ADD gave the pod.
type Result struct {
	// IPs are the pod's addresses on its interface, IPv4 first; the first
	// one is the pod's primary IP (CRI PodSandboxNetworkStatus.Ip).
	IPs []string
	// Interface is the pod-side interface the IPs are on (eth0).
	Interface string
	// Raw is the CNI result as the plugins returned it, in the network's
	// CNI version, for the sandbox record.
	Raw json.RawMessage
}

// Setup attaches the pod's netns to the selected CNI network (CNI ADD).
//
// The CNI_ARGS are the ones kubelet's CNI code always passed and network
// add-ons rely on; IgnoreUnknown=1 tells plugins that do not know them not
// to fail (CNI spec, "CNI_ARGS"). PortMappings travel as the portMappings
// capability, which libcni gives only to plugins that declare it.
//
// If ADD fails, Setup runs DEL itself before returning, so the failed ADD
// leaves no IP lease, veth or iptables rule behind (the CNI spec requires
// DEL after a failed ADD to clean up whatever ADD did).
func (m *Manager) Setup(ctx context.Context, pn PodNetwork) (Result, error) {
	list, file, err := m.loadNetwork()
	if err != nil {
		return Result{}, fmt.Errorf("network: setup pod %s: %w", pn.PodID, err)
	}
	rt := runtimeConf(pn, pn.NetnsPath)
	list = withoutIdlePortmap(list, rt)
	log := m.log.With("pod", pn.PodID, "network", list.Name)

	start := time.Now()
	res, err := m.cni.AddNetworkList(ctx, list, rt)
	var out Result
	if err == nil {
		out, err = toResult(res)
	}
	if err != nil {
		err = fmt.Errorf("network: CNI ADD pod %s to network %q (%s): %w", pn.PodID, list.Name, file, err)
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		// A netns that is not one (the likely cause of the failure) would
		// fail DEL too; without it DEL still releases the lease.
		if !netnsUsable(rt.NetNS) {
			rt.NetNS = ""
		}
		if derr := m.cni.DelNetworkList(dctx, list, rt); derr != nil {
			log.Error("CNI DEL after failed ADD", "error", derr)
			err = errors.Join(err, fmt.Errorf("network: CNI DEL after failed ADD: %w", derr))
		}
		return Result{}, err
	}
	log.Debug("CNI ADD", "ips", out.IPs, "took", time.Since(start))
	return out, nil
}

// Teardown detaches the pod from its network (CNI DEL). kubelet calls it
// more than once, also after a daemon restart and after the netns is gone,
// so it is idempotent:
//
//   - It DELs every attachment libcni cached for the pod at ADD time (under
//     CacheDir, which survives a daemon restart) with the cached config,
//     CNI_ARGS and capability args: the network config may have changed
//     since (UpdatePodCIDR, an add-on installed), but DEL must be given
//     what ADD was (CNI spec, "DEL"). libcni removes the cache entry only
//     after a successful DEL, so a failed Teardown can be retried.
//   - With no cache entry (a second Teardown, or the cache lost), it DELs
//     with the current config: plugins must treat DEL of something
//     unknown as success.
//   - If the netns is gone (or the path is a leftover file, not a mounted
//     netns), CNI_NETNS is passed empty, which the spec says DEL must
//     tolerate: bridge then skips the veth (it died with the netns) but
//     host-local still releases the lease and portmap still removes its
//     rules. bridge's ipMasq rules are removed only when DEL finds the pod
//     interface in the netns, so for that case Teardown hands DEL a
//     stand-in netns (standin.go). Teardown still belongs before
//     RemoveNetns: that is the plain path.
func (m *Manager) Teardown(ctx context.Context, pn PodNetwork) error {
	netns := ""
	if netnsUsable(pn.NetnsPath) {
		netns = pn.NetnsPath
	}
	atts, err := m.cni.GetCachedAttachments(pn.PodID)
	if err != nil {
		// An unreadable cache dir must not block teardown; fall back to
		// the current config below.
		m.log.Warn("reading CNI cache", "pod", pn.PodID, "dir", m.cfg.CacheDir, "error", err)
		atts = nil
	}
	var errs []error
	for _, a := range atts {
		list, err := libcni.NetworkConfFromBytes(a.Config)
		if err != nil {
			errs = append(errs, fmt.Errorf("network: cached CNI config of pod %s network %q: %w", pn.PodID, a.Network, err))
			continue
		}
		rt := &libcni.RuntimeConf{
			ContainerID:    a.ContainerID,
			NetNS:          netns,
			IfName:         a.IfName,
			Args:           a.CniArgs,
			CapabilityArgs: a.CapabilityArgs,
		}
		if netns == "" {
			if path, remove, ok := m.standInNetns(list, rt); ok {
				rt.NetNS = path
				defer remove()
			}
		}
		if err := m.cni.DelNetworkList(ctx, list, rt); err != nil {
			errs = append(errs, fmt.Errorf("network: CNI DEL pod %s from network %q: %w", pn.PodID, a.Network, err))
		}
	}
	if len(atts) > 0 {
		return errors.Join(errs...)
	}

	list, file, err := m.loadNetwork()
	if err != nil {
		// No cache entry and no config: nothing husk knows of to undo.
		m.log.Debug("CNI DEL skipped: no cached attachment and no network config", "pod", pn.PodID, "reason", err)
		return nil
	}
	rt := runtimeConf(pn, netns)
	if err := m.cni.DelNetworkList(ctx, withoutIdlePortmap(list, rt), rt); err != nil {
		return fmt.Errorf("network: CNI DEL pod %s from network %q (%s): %w", pn.PodID, list.Name, file, err)
	}
	return nil
}

// runtimeConf builds the per-pod half of a CNI invocation.
func runtimeConf(pn PodNetwork, netns string) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: pn.PodID,
		NetNS:       netns,
		IfName:      podIfName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", pn.Namespace},
			{"K8S_POD_NAME", pn.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", pn.PodID},
			{"K8S_POD_UID", pn.UID},
		},
	}
	if pm := portMappings(pn.PortMappings); len(pm) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": pm}
	}
	return rt
}

// cniPortMapping is the portMappings capability entry (CNI
// CONVENTIONS.md, "Port mappings").
type cniPortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// portMappings converts CRI port mappings. Entries without a host port are
// dropped, as kubelet/containerd do: in CRI a containerPort with hostPort 0
// is informational and must not be published on the node.
func portMappings(pms []PortMapping) []cniPortMapping {
	var out []cniPortMapping
	for _, p := range pms {
		if p.HostPort <= 0 {
			continue
		}
		proto := strings.ToLower(p.Protocol)
		if proto == "" {
			proto = "tcp"
		}
		out = append(out, cniPortMapping{
			HostPort:      p.HostPort,
			ContainerPort: p.ContainerPort,
			Protocol:      proto,
			HostIP:        p.HostIP,
		})
	}
	return out
}

// toResult extracts the pod's addresses from a CNI result: those on an
// interface inside the sandbox (or on no named interface, for plugins that
// omit it), IPv4 first so the primary IP is IPv4 on a dual-stack pod, as
// kubelet expects.
func toResult(res types.Result) (Result, error) {
	raw, err := json.Marshal(res)
	if err != nil {
		return Result{}, fmt.Errorf("encoding CNI result: %w", err)
	}
	cur, err := types100.NewResultFromResult(res)
	if err != nil {
		return Result{}, fmt.Errorf("converting CNI result: %w", err)
	}
	out := Result{Interface: podIfName, Raw: raw}
	var v4, v6 []string
	for _, ipc := range cur.IPs {
		if ipc == nil || ipc.Address.IP == nil {
			continue
		}
		if ipc.Interface != nil {
			i := *ipc.Interface
			if i < 0 || i >= len(cur.Interfaces) || cur.Interfaces[i].Sandbox == "" {
				continue // a host-side address, e.g. the bridge's gateway
			}
			out.Interface = cur.Interfaces[i].Name
		}
		if ip4 := ipc.Address.IP.To4(); ip4 != nil {
			v4 = append(v4, ip4.String())
		} else {
			v6 = append(v6, ipc.Address.IP.String())
		}
	}
	out.IPs = append(v4, v6...)
	return out, nil
}
