package testenv

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// SystemdNodeRef is the image of a node of our own making: a Debian root
// (debootstrap, minbase) with systemd as its init, the way kind's node
// image is, for the tests that need husk under a systemd PID 1.
const SystemdNodeRef = "localhost/husk-test/systemd-node:bookworm-3"

// systemdNodePackages are what the node needs beyond minbase: systemd as
// PID 1 and D-Bus, which the systemd cgroup driver talks to; iptables and
// iproute2 for kubelet's own checks.
var systemdNodePackages = []string{"systemd", "systemd-sysv", "dbus", "iptables", "iproute2"}

// nodeInit is the node's entrypoint. On a cgroup v1 host the node's
// cgroup mounts are already rooted at its own cgroups (the runtime binds
// them so, as docker does), but without a cgroup namespace
// /proc/self/cgroup names the full host paths, which systemd and kubelet
// then look for under those mounts, and nest everything twice. Starting
// init in a cgroup namespace rooted where the node is makes both say "/"
// (kind's entrypoint reaches the same with bind mounts of each path).
const nodeInit = `#!/bin/sh
exec unshare --cgroup /sbin/init
`

var systemdNodeMu sync.Mutex

// SystemdNodeArchive returns a docker-archive (husk image import's input)
// of SystemdNodeRef in cacheDir: the Debian root, made once with
// debootstrap from the apt mirror this machine's sources name (as
// busyboxDeb fetches the test images' packages; about a minute, 240 MB
// unpacked), and node-init as a layer of its own, so changing it does not
// fetch the root again.
func SystemdNodeArchive(cacheDir string) (string, error) {
	systemdNodeMu.Lock()
	defer systemdNodeMu.Unlock()
	sum := sha256.Sum256([]byte(nodeInit))
	archive := filepath.Join(cacheDir, fmt.Sprintf("systemd-node-bookworm-%x.tar", sum[:6]))
	if _, err := os.Stat(archive); err == nil {
		return archive, nil
	}
	rootTar, err := systemdNodeRoot(cacheDir)
	if err != nil {
		return "", err
	}
	base, err := tarball.LayerFromFile(rootTar)
	if err != nil {
		return "", err
	}
	b := newLayerBuilder()
	b.File("usr/local/bin/node-init", 0o755, []byte(nodeInit))
	initLayer, err := b.Layer(types.DockerLayer)
	if err != nil {
		return "", err
	}
	img, err := mutate.AppendLayers(empty.Image, base, initLayer)
	if err != nil {
		return "", err
	}
	// container= tells systemd it runs in a container; SIGRTMIN+3 is its
	// "halt", as kind's nodes stop.
	img, err = mutate.Config(img, v1.Config{Entrypoint: []string{"/usr/local/bin/node-init"}, Env: []string{"container=husk"}, StopSignal: "SIGRTMIN+3"})
	if err != nil {
		return "", err
	}
	ref, err := name.NewTag(SystemdNodeRef)
	if err != nil {
		return "", err
	}
	tmp := archive + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, archive); err != nil {
		return "", err
	}
	// Archives of an earlier node-init are 130 MB each of nothing.
	old, _ := filepath.Glob(filepath.Join(cacheDir, "systemd-node-bookworm-*.tar"))
	for _, o := range old {
		if o != archive && !strings.HasSuffix(o, "-root.tar") {
			os.Remove(o)
		}
	}
	return archive, nil
}

// systemdNodeRoot is the tar of the node's Debian root in cacheDir, made
// with debootstrap the first time.
func systemdNodeRoot(cacheDir string) (string, error) {
	rootTar := filepath.Join(cacheDir, "systemd-node-bookworm-root.tar")
	if _, err := os.Stat(rootTar); err == nil {
		return rootTar, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return "", fmt.Errorf("the systemd node image needs debootstrap (make deps installs it): %w", err)
	}
	work, err := os.MkdirTemp(cacheDir, "systemd-node-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	root := filepath.Join(work, "root")
	cmd := exec.Command("debootstrap", "--variant=minbase", "--include="+strings.Join(systemdNodePackages, ","),
		"bookworm", root, aptMirror())
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("debootstrap the systemd node: %v: %s", err, Tail(string(out), 20))
	}
	// The node's own machine id is made at its first boot.
	if err := os.WriteFile(filepath.Join(root, "etc", "machine-id"), nil, 0o444); err != nil {
		return "", err
	}
	tmp := filepath.Join(work, "root.tar")
	if out, err := exec.Command("tar", "--numeric-owner", "--xattrs", "-C", root, "-cf", tmp, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("tar the systemd node: %v: %s", err, out)
	}
	return rootTar, os.Rename(tmp, rootTar)
}

// aptMirror is the first Debian mirror this machine's apt sources name
// (deb822 URIs: or a one-line deb entry), else deb.debian.org.
func aptMirror() string {
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	files = append(files, "/etc/apt/sources.list")
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			switch {
			case len(fields) >= 2 && fields[0] == "URIs:" && !strings.Contains(fields[1], "security"):
				fh.Close()
				return fields[1]
			case len(fields) >= 3 && fields[0] == "deb":
				// deb [options] URI suite ...
				for _, f := range fields[1:] {
					if strings.Contains(f, "://") && !strings.Contains(f, "security") {
						fh.Close()
						return f
					}
				}
			}
		}
		fh.Close()
	}
	return "http://deb.debian.org/debian"
}
