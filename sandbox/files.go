package sandbox

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/husk-runtime/husk/network"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// writePodFiles writes the hostname, hosts and resolv.conf every container
// of the pod mounts. hosts is written again once CNI has given the pod IPs.
func (m *Manager) writePodFiles(p *Pod, ips []string) (podFiles, error) {
	f := m.podFilesOf(p)
	host := podHostname(p.Config)
	if p.HostNetwork {
		h, err := os.Hostname()
		if err != nil {
			return f, fmt.Errorf("hostname: %w", err)
		}
		host = h
	}
	if err := network.WriteHostname(f.Hostname, host); err != nil {
		return f, err
	}
	if !p.HostNetwork {
		if err := network.WriteHosts(f.Hosts, host, ips); err != nil {
			return f, err
		}
	}
	dns := p.Config.GetDnsConfig()
	if err := network.WriteResolvConf(m.log, f.ResolvConf, dns.GetServers(), dns.GetSearches(), dns.GetOptions()); err != nil {
		return f, err
	}
	return f, nil
}

// podFilesOf names the files a pod's containers mount. A host-network pod
// sees the node's /etc/hosts, as with kubelet; a host-IPC pod the node's
// /dev/shm.
func (m *Manager) podFilesOf(p *Pod) podFiles {
	dir := m.paths.PodDir(p.ID)
	f := podFiles{
		Hostname: filepath.Join(dir, "hostname"), Hosts: filepath.Join(dir, "hosts"),
		ResolvConf: filepath.Join(dir, "resolv.conf"), Shm: filepath.Join(dir, "shm"),
	}
	if p.HostNetwork {
		f.Hosts = "/etc/hosts"
	}
	if p.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetIpc() == runtimeapi.NamespaceMode_NODE {
		f.Shm = "/dev/shm"
	}
	return f
}

// mountShm gives the pod its own /dev/shm, shared by its containers, unless
// the pod uses the host's IPC namespace.
func (m *Manager) mountShm(p *Pod, path string) error {
	if path == "/dev/shm" {
		return nil
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return fmt.Errorf("create shm dir %s: %w", path, err)
	}
	if err := unix.Mount("shm", path, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=65536k"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", path, err)
	}
	m.set(func() { p.ShmMounted = true })
	return nil
}

func syscallKill(pid int) error { return unix.Kill(pid, unix.SIGKILL) }
