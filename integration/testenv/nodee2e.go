package testenv

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The Kubernetes node e2e suite (k8s.io/kubernetes v1.37.2, test/e2e_node,
// focus [NodeConformance], skipping [Flaky]|[Slow]|[Serial]) pulls these
// images; NodeE2EImages builds a stand-in for each. Which spec uses which
// (from `e2e_node.test --ginkgo.dry-run` of that selection and the specs'
// sources):
//
//   - agnhost 2.66.1: netexec/test-webserver/grpc-health-checking/
//     h2c-server/liveness/mounttest/etc-hosts/entrypoint-tester servers, and
//     shell scripts run in it: `/bin/bash -c` (probe termination specs),
//     `curl` (exec lifecycle hooks, Networking Granular Checks), `nc -w 1 -u`
//     (node-pod udp), the `nmeter` timestamps of the container lifecycle
//     specs, `id -G` as uid 1000 (user-defined-in-image, group 50000).
//     netexec's https hooks need /localhost.crt and /localhost.key.
//   - busybox 1.37.0-2: the default test image. Specs call applets by
//     absolute /bin paths (/bin/sysctl, /bin/top, /bin/pidof, /bin/sleep,
//     /bin/true, /bin/false, /bin/echo) as in upstream's busybox image, which
//     has every applet in /bin; Debian's busybox puts some in /sbin and
//     /usr/bin, so the stand-in adds /bin links. The container lifecycle
//     specs run `date -u +%FT$(nmeter -d0 '%3t' | head -n1)Z`: Debian's
//     busybox has no nmeter applet, so a Go nmeter (toolsSource) stands in.
//     Every other command these specs run in it is an applet of Debian's
//     busybox (checked against `busybox --list`).
//   - pause 3.10.2: lifecycle hook, init container, mirror pod, cgroup,
//     RuntimeClass and admission specs run it as a plain container.
//   - nginx 1.27.0-2: the static pods of the MirrorPod specs (running is all
//     they check).
//   - nonroot 1.5 (USER 1234, `id -u`), nonewprivs 1.4 (the setuid nnp
//     printing "Effective uid: N"): the Security Context specs.
//   - glibc-dns-testing 2.1.1: the Hostname/Override hostname specs run
//     `echo $(hostname)';'$(hostname -f)';'`; the stand-in has Debian's
//     hostname program (what the upstream Debian image runs) over glibc,
//     resolving through the kubelet-managed /etc/hosts.
//   - agnhost 2.55, nginx 1.28.0-2, kitten 1.8, nautilus 1.8: no spec of that
//     selection pulls them (AgnhostPrev: "Pods should run through the
//     lifecycle of Pods and PodStatus", [Conformance] but not
//     [NodeConformance], and the pre-pull list; NginxNew, kitten and
//     nautilus: apimachinery and kubectl specs the node suite does not link);
//     they are served so other focuses and a pre-pull find them.
//
// Left out on purpose:
//   - invalid.registry.k8s.io/invalid/alpine:3.1 (InvalidRegistryImage):
//     specs expect its pull to fail; its host is in NodeE2EDeadHosts.
//   - docker.io/non-existing-repo/non-existing-image:v1.0 ("Deleted pods
//     handling Should transition to Failed phase a pod which is deleted while
//     pending") and docker.io/library/image-N:latest ("MirrorPodWithGracePeriod
//     ... should update a static pod when the static pod is updated multiple
//     times during the graceful termination period"): unqualified names that
//     must not exist, so docker.io is a dead host too.
//   - The suite's pre-pull list (test/e2e_node/image_list.go) also names
//     busybox@sha256:a9155b13... (a manifest digest only upstream has),
//     perl, etcd, node-perf, cadvisor, node-problem-detector and device
//     plugin images: none is used by this selection, so the runner passes
//     --prepull-images=false instead of serving them.
//
// No spec of the selection needs an image that cannot be reproduced offline.

// NodeE2EUpstreamHosts are the registry hosts of NodeE2EImages' references;
// each needs a mirror hosts.toml (WriteMirrorHosts) pointing at the local
// registry.
var NodeE2EUpstreamHosts = []string{"registry.k8s.io"}

// NodeE2EDeadHosts are hosts of references the suite expects to fail to pull
// (InvalidRegistryImage's invalid.registry.k8s.io; docker.io, where the
// unqualified non-existing-repo/non-existing-image:v1.0 and image-N names
// resolve). Give them a mirror where nothing listens so the pulls fail
// locally and nothing reaches for the internet.
var NodeE2EDeadHosts = []string{"invalid.registry.k8s.io", "docker.io"}

// nodeE2ERefs are the upstream references NodeE2EImages serves, keyed by
// their ImageID name in k8s.io/kubernetes/test/utils/image/manifest.go of
// the pinned version (the test checks them against that file).
var nodeE2ERefs = map[string]string{
	"Agnhost":         "registry.k8s.io/e2e-test-images/agnhost:2.66.1",
	"AgnhostPrev":     "registry.k8s.io/e2e-test-images/agnhost:2.55",
	"BusyBox":         "registry.k8s.io/e2e-test-images/busybox:1.37.0-2",
	"GlibcDnsTesting": "registry.k8s.io/e2e-test-images/glibc-dns-testing:2.1.1",
	"Kitten":          "registry.k8s.io/e2e-test-images/kitten:1.8",
	"Nautilus":        "registry.k8s.io/e2e-test-images/nautilus:1.8",
	"Nginx":           "registry.k8s.io/e2e-test-images/nginx:1.27.0-2",
	"NginxNew":        "registry.k8s.io/e2e-test-images/nginx:1.28.0-2",
	"NonRoot":         "registry.k8s.io/e2e-test-images/nonroot:1.5",
	"Nonewprivs":      "registry.k8s.io/e2e-test-images/nonewprivs:1.4",
	"Pause":           "registry.k8s.io/pause:3.10.2",
}

// KubeletToolsDir is the module that pins k8s.io/kubernetes for the kubelet
// and the suite (tools/kubelet of this repository); agnhost is built there
// and the images' data files (agnhost's TLS pair, kitten's and nautilus'
// pictures) come from that module's source. Empty: found by walking up from
// the working directory.
var KubeletToolsDir string

// agnhostPackage is the agnhost main package in k8s.io/kubernetes.
const agnhostPackage = "k8s.io/kubernetes/test/images/agnhost"

// agnhostLDFlags are upstream's (test/images/image-util.sh: -w, no DWARF),
// without -X main.Version since both tags share one binary.
const agnhostLDFlags = "-w"

// NodeE2EImages builds a stand-in for every image the node e2e suite's
// [NodeConformance] specs (outside [Flaky], [Slow] and [Serial]) pull, keyed
// by upstream reference (see the comment at the top of this file for which
// spec needs what). base is BuildBusybox's image. The values mix Docker
// schema 2 and OCI manifests, Docker manifest lists and OCI indexes, as
// CritestImages' do. cacheDir holds the compiled programs (agnhost, the
// tools standing in for nmeter, curl and nc, pause, nnp) between runs.
func NodeE2EImages(base v1.Image, cacheDir string) (map[string]Artifact, error) {
	modDir, toolsDir, err := kubernetesModule()
	if err != nil {
		return nil, err
	}
	agnhost, err := agnhostBinary(toolsDir, cacheDir)
	if err != nil {
		return nil, err
	}
	tools, err := goProgram(cacheDir, "e2e-tools", toolsSource)
	if err != nil {
		return nil, err
	}
	pause, err := goProgram(cacheDir, "pause", pauseSource)
	if err != nil {
		return nil, err
	}
	nnp, err := nonewprivsBinary(cacheDir)
	if err != nil {
		return nil, err
	}
	readUpstream := func(rel string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(modDir, filepath.FromSlash(rel)))
		if err != nil {
			return nil, fmt.Errorf("k8s.io/kubernetes source: %w", err)
		}
		return b, nil
	}

	out := map[string]Artifact{}
	type shape int
	const (
		docker shape = iota
		oci
		dockerList
		ociIndex
	)
	add := func(id string, s shape, img v1.Image) error {
		ref := nodeE2ERefs[id]
		var a Artifact
		var err error
		switch s {
		case docker:
			a, err = ToDocker(img)
		case oci:
			a, err = ToOCI(img)
		case dockerList:
			a, err = Index(img, types.DockerManifestList)
		default:
			a, err = Index(img, types.OCIImageIndex)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", ref, err)
		}
		out[ref] = a
		return nil
	}
	// marker adds a one-file layer naming the image, so tags that share
	// everything else (the two agnhost and the two nginx tags) are distinct
	// images, as upstream's are, while sharing their big layers.
	marker := func(img v1.Image, file, content string) (v1.Image, error) {
		return WithFile(img, file, []byte(content+"\n"), 0o644)
	}

	bb, err := BusyboxUpstreamEnv(cacheDir)
	if err != nil {
		return nil, err
	}
	busybox, err := nodeE2EBusybox(base, tools, bb)
	if err != nil {
		return nil, fmt.Errorf("busybox: %w", err)
	}
	if err := add("BusyBox", dockerList, busybox); err != nil {
		return nil, err
	}

	crt, err := readUpstream("test/images/agnhost/porter/localhost.crt")
	if err != nil {
		return nil, err
	}
	key, err := readUpstream("test/images/agnhost/porter/localhost.key")
	if err != nil {
		return nil, err
	}
	agn, err := agnhostImage(busybox, agnhost, tools, crt, key)
	if err != nil {
		return nil, fmt.Errorf("agnhost: %w", err)
	}
	// Both agnhost tags share the binary built from the pinned source: the
	// specs use no behavior of 2.55 that 2.66.1 lacks.
	agnCur, err := marker(agn, "/agnhost-version", "2.66.1")
	if err != nil {
		return nil, err
	}
	if err := add("Agnhost", ociIndex, agnCur); err != nil {
		return nil, err
	}
	agnPrev, err := marker(agn, "/agnhost-version", "2.55")
	if err != nil {
		return nil, err
	}
	if err := add("AgnhostPrev", dockerList, agnPrev); err != nil {
		return nil, err
	}

	// kitten and nautilus: agnhost's test-webserver serving the picture and
	// data.json their Dockerfiles copy to /.
	for _, c := range []struct {
		id, dir, picture string
		s                shape
	}{
		{"Kitten", "kitten", "kitten.jpg", dockerList},
		{"Nautilus", "nautilus", "nautilus.jpg", oci},
	} {
		pic, err := readUpstream("test/images/" + c.dir + "/html/" + c.picture)
		if err != nil {
			return nil, err
		}
		data, err := readUpstream("test/images/" + c.dir + "/html/data.json")
		if err != nil {
			return nil, err
		}
		img, err := WithFiles(agnCur, map[string]File{
			"/" + c.picture: {Content: pic, Mode: 0o644},
			"/data.json":    {Content: data, Mode: 0o644},
		})
		if err == nil {
			img, err = WithConfig(img, func(cfg *v1.Config) { cfg.Cmd = []string{"test-webserver"} })
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.dir, err)
		}
		if err := add(c.id, c.s, img); err != nil {
			return nil, err
		}
	}

	pauseImg, err := pauseImage(pause)
	if err != nil {
		return nil, fmt.Errorf("pause: %w", err)
	}
	if err := add("Pause", ociIndex, pauseImg); err != nil {
		return nil, err
	}

	// nginx: CritestImages' stand-in (a process named nginx serving
	// /usr/share/nginx/html on port 80) on this busybox.
	ng, err := nginxStandIn(busybox, "80")
	if err != nil {
		return nil, fmt.Errorf("nginx: %w", err)
	}
	for _, c := range []struct {
		id, version string
		s           shape
	}{{"Nginx", "1.27.0-2", docker}, {"NginxNew", "1.28.0-2", oci}} {
		img, err := marker(ng, "/nginx-version", c.version)
		if err != nil {
			return nil, err
		}
		if err := add(c.id, c.s, img); err != nil {
			return nil, err
		}
	}

	// nonroot: its Dockerfile only sets USER 1234 (not in /etc/passwd).
	nonroot, err := WithConfig(busybox, func(c *v1.Config) { c.User = "1234" })
	if err != nil {
		return nil, err
	}
	if err := add("NonRoot", docker, nonroot); err != nil {
		return nil, err
	}

	// nonewprivs: the setuid-root nnp in /usr/local/bin, CMD ["nnp"], no USER
	// (the specs run it as uid 1000).
	nnpImg, err := WithFile(busybox, "/usr/local/bin/nnp", nnp, 0o4755)
	if err == nil {
		nnpImg, err = WithConfig(nnpImg, func(c *v1.Config) { c.Cmd = []string{"nnp"} })
	}
	if err != nil {
		return nil, fmt.Errorf("nonewprivs: %w", err)
	}
	if err := add("Nonewprivs", oci, nnpImg); err != nil {
		return nil, err
	}

	dns, err := glibcDNSTestingImage(busybox)
	if err != nil {
		return nil, fmt.Errorf("glibc-dns-testing: %w", err)
	}
	if err := add("GlibcDnsTesting", ociIndex, dns); err != nil {
		return nil, err
	}
	return out, nil
}

// PushNodeE2EImages builds NodeE2EImages(base) and pushes each under its
// mirror path to the registry at registryAddr ("127.0.0.1:PORT").
func PushNodeE2EImages(ctx context.Context, registryAddr string, base v1.Image, cacheDir string) error {
	imgs, err := NodeE2EImages(base, cacheDir)
	if err != nil {
		return err
	}
	return pushMirrored(ctx, registryAddr, imgs)
}

// nodeE2EBusybox is base laid out as upstream's busybox image: every program
// also under /bin (Debian's busybox installs some applets in /sbin and
// /usr/bin, and the specs run /bin/sysctl, /bin/top...), plus the Go nmeter
// Debian's busybox lacks. The /bin entries are symbolic links: a hard link
// cannot reach a file of a lower layer, and busybox picks the applet from
// the name it is run as, which a link keeps.
//
// Its busybox is BusyboxUpstreamEnv's (bb, a host path), whose ash keeps
// environment entries with names that are not identifiers as upstream's
// does: it replaces base's /bin/busybox, and every applet of base (hard
// links to the old binary) becomes a link to it.
func nodeE2EBusybox(base v1.Image, tools []byte, bb string) (v1.Image, error) {
	files, err := imageFiles(base)
	if err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(bb)
	if err != nil {
		return nil, err
	}
	b := newLayerBuilder()
	b.File("bin/busybox", 0o755, bin)
	if err := addLibs(b, bb, func(p string) bool { _, ok := files[p]; return ok }); err != nil {
		return nil, err
	}
	for p, typ := range files {
		if typ == tar.TypeLink {
			b.Symlink(p, "/bin/busybox")
		}
	}
	for _, dir := range []string{"sbin", "usr/bin", "usr/sbin"} {
		for p, typ := range files {
			if path.Dir(p) != dir || typ == tar.TypeDir {
				continue
			}
			if _, ok := files["bin/"+path.Base(p)]; ok {
				continue
			}
			if _, ok := b.entries["bin/"+path.Base(p)]; ok {
				continue // the same name in two of these dirs: the first wins
			}
			b.Symlink("bin/"+path.Base(p), "/"+p)
		}
	}
	b.File("bin/nmeter", 0o755, tools)
	return addLayer(base, b, "testenv: busybox with upstream's ash environment; every program under /bin as in busybox's image; nmeter")
}

// imageFiles returns the paths (no leading slash) of img's flattened file
// system and their tar entry types.
func imageFiles(img v1.Image) (map[string]byte, error) {
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		files[clean(h.Name)] = h.Typeflag
	}
}

// agnhostEtcPasswd and agnhostEtcGroup are the accounts agnhost's Dockerfile
// adds to its Alpine base: user-defined-in-image (uid 1000) in
// group-defined-in-image (gid 50000), which the SupplementalGroupsPolicy
// specs expect `id -G` to show.
const agnhostEtcPasswd = `root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/:/sbin/nologin
user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh
`

const agnhostEtcGroup = `root:x:0:root
nogroup:x:65533:
nobody:x:65534:
user-defined-in-image:x:1000:
group-defined-in-image:x:50000:user-defined-in-image
`

// agnhostImage lays agnhost out as its Dockerfile does: /agnhost (the
// entrypoint, CMD pause), /agnhost-2 linking to it, the porter TLS pair at
// /localhost.crt and /localhost.key, /uploads, the image's users, and the
// tools the specs run in it that Debian's busybox lacks: bash (the host's,
// with its libraries) and curl and nc (the Go tools; Debian's busybox nc has
// no -u). Left out: coredns, iperf, socat, dig and the fake registry's
// content, which only specs outside this selection use.
func agnhostImage(busybox v1.Image, agnhost, tools, crt, key []byte) (v1.Image, error) {
	files, err := imageFiles(busybox)
	if err != nil {
		return nil, err
	}
	b := newLayerBuilder()
	b.File("agnhost", 0o755, agnhost)
	b.Symlink("agnhost-2", "agnhost")
	b.File("localhost.crt", 0o644, crt)
	b.File("localhost.key", 0o644, key)
	b.Dir("uploads", 0o755)
	b.Dir("home/user-defined-in-image", 0o755)
	b.entries["home/user-defined-in-image"].uid, b.entries["home/user-defined-in-image"].gid = 1000, 1000
	b.File("etc/passwd", 0o644, []byte(agnhostEtcPasswd))
	b.File("etc/group", 0o644, []byte(agnhostEtcGroup))
	b.File("usr/bin/curl", 0o755, tools)
	b.Hardlink("usr/bin/nc", "usr/bin/curl") // nodeE2EBusybox's /bin/nc links here
	if err := addHostProgram(b, "/bin/bash", "bin/bash", files); err != nil {
		return nil, err
	}
	img, err := addLayer(busybox, b, "testenv: agnhost, its TLS pair and users; bash, curl, nc")
	if err != nil {
		return nil, err
	}
	return WithConfig(img, func(c *v1.Config) {
		c.Entrypoint = []string{"/agnhost"}
		c.Cmd = []string{"pause"}
		c.ExposedPorts = map[string]struct{}{"80/tcp": {}, "8080/tcp": {}, "8081/tcp": {}, "9376/tcp": {}, "5000/tcp": {}}
	})
}

// glibcDNSTestingImage is busybox plus the host's (Debian's) hostname
// program at /usr/bin/hostname, first on PATH, and /bin/hostname: upstream's
// image is Debian with dnsutils, and the specs run only `hostname` and
// `hostname -f`.
func glibcDNSTestingImage(busybox v1.Image) (v1.Image, error) {
	files, err := imageFiles(busybox)
	if err != nil {
		return nil, err
	}
	b := newLayerBuilder()
	if err := addHostProgram(b, "/usr/bin/hostname", "usr/bin/hostname", files); err != nil {
		return nil, fmt.Errorf("%w (install Debian's hostname package)", err)
	}
	b.Symlink("bin/hostname", "/usr/bin/hostname")
	return addLayer(busybox, b, "testenv: Debian's hostname")
}

// addHostProgram adds the host's program at host to b as dst, with the
// shared libraries and loader ldd lists that are not already in the image
// (have: the image's paths).
func addHostProgram(b *layerBuilder, host, dst string, have map[string]byte) error {
	data, err := os.ReadFile(host)
	if err != nil {
		return err
	}
	b.File(dst, 0o755, data)
	return addLibs(b, host, func(p string) bool { _, ok := have[p]; return ok })
}

// pauseImage is upstream's layout: only /pause (static), USER 65535:65535.
func pauseImage(pause []byte) (v1.Image, error) {
	b := newLayerBuilder()
	b.File("pause", 0o755, pause)
	layer, err := b.Layer(types.DockerLayer)
	if err != nil {
		return nil, err
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Created:      v1.Time{Time: Epoch},
		Config: v1.Config{
			Env:        []string{"PATH=" + DefaultPath},
			Entrypoint: []string{"/pause"},
			User:       "65535:65535",
			WorkingDir: "/",
		},
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.DockerLayer,
		History:   v1.History{Created: v1.Time{Time: Epoch}, CreatedBy: "testenv: pause"},
	})
}

// kubernetesModule returns the k8s.io/kubernetes module directory (in the
// module cache) that KubeletToolsDir pins, and KubeletToolsDir itself.
func kubernetesModule() (modDir, toolsDir string, err error) {
	toolsDir, err = kubeletToolsDir()
	if err != nil {
		return "", "", err
	}
	goBin, err := goCommand()
	if err != nil {
		return "", "", err
	}
	cmd := exec.Command(goBin, "list", "-m", "-f", "{{.Dir}}", "k8s.io/kubernetes")
	cmd.Dir = toolsDir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOWORK=off", "GOTOOLCHAIN=local")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", "", fmt.Errorf("go list -m k8s.io/kubernetes in %s: %w: %s", toolsDir, err, ee.Stderr)
		}
		return "", "", fmt.Errorf("go list -m k8s.io/kubernetes in %s: %w", toolsDir, err)
	}
	modDir = strings.TrimSpace(string(out))
	if modDir == "" {
		return "", "", fmt.Errorf("k8s.io/kubernetes is not downloaded for %s (go mod download k8s.io/kubernetes there)", toolsDir)
	}
	return modDir, toolsDir, nil
}

func kubeletToolsDir() (string, error) {
	if KubeletToolsDir != "" {
		return KubeletToolsDir, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		cand := filepath.Join(dir, "tools", "kubelet")
		if _, err := os.Stat(filepath.Join(cand, "go.mod")); err == nil {
			return cand, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no tools/kubelet/go.mod above the working directory: set testenv.KubeletToolsDir")
		}
		dir = parent
	}
}

// agnhostBinary returns agnhost built from the k8s.io/kubernetes that
// toolsDir pins (CGO_ENABLED=0, -trimpath, upstream's -ldflags), cached in
// cacheDir by toolsDir's go.mod (it fixes every module version; go.sum only
// vouches for them), the Go version and architecture. The build never edits
// go.mod or go.sum (-mod=readonly): a missing go.sum entry is an error to
// fix in tools/kubelet.
func agnhostBinary(toolsDir, cacheDir string) ([]byte, error) {
	mod, err := os.ReadFile(filepath.Join(toolsDir, "go.mod"))
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write(mod)
	fmt.Fprint(h, runtime.Version(), runtime.GOARCH, agnhostLDFlags)
	cached := filepath.Join(cacheDir, "agnhost-"+hex.EncodeToString(h.Sum(nil)[:8]))
	if b, err := os.ReadFile(cached); err == nil {
		return b, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, err
	}
	goBin, err := goCommand()
	if err != nil {
		return nil, fmt.Errorf("building agnhost: %w", err)
	}
	tmpOut := cached + ".tmp"
	cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags="+agnhostLDFlags, "-o", tmpOut, agnhostPackage)
	cmd.Dir = toolsDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH,
		"GOTOOLCHAIN=local", "GOFLAGS=-mod=readonly", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmpOut)
		return nil, fmt.Errorf("go build %s in %s: %w: %s", agnhostPackage, toolsDir, err, out)
	}
	if err := os.Rename(tmpOut, cached); err != nil {
		return nil, err
	}
	return os.ReadFile(cached)
}

// toolsSource is one static program standing in for the commands the specs
// run that the images' busybox lacks, picked by the name it runs as:
//
//   - nmeter: busybox's, reduced to what the suite uses (`nmeter -d0 '%3t'`):
//     -d MSEC (default 1000, -1 for no delay), literal text, %%, %Nt or
//     %[tN] (local time hh:mm:ss with N decimals, rounded like busybox), %r
//     (end lines with CR). A line per update until a write fails (SIGPIPE
//     once `head -n1` is gone).
//   - curl: GET (or -X/-d) of one URL with the flags the suite passes: -g -q
//     -s -S -i -f -k -L, -o FILE, -w FORMAT (%{http_code}, %{response_code},
//     \n), -m/--max-time, --connect-timeout, -H; no proxy. Exit codes as
//     curl's: 3 bad URL, 6 no such host, 7 no connection, 22 HTTP error with
//     -f, 28 timeout, 60 certificate.
//   - nc: OpenBSD netcat's client side: nc [-u] [-w SEC] [-v] [-z] HOST PORT;
//     stdin to the peer, the peer to stdout; -w ends it after SEC idle
//     seconds (the UDP specs' `echo hostName | nc -w 1 -u IP PORT`).
const toolsSource = `package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func main() {
	var code int
	switch filepath.Base(os.Args[0]) {
	case "nmeter":
		code = nmeter(os.Args[1:])
	case "curl":
		code = curl(os.Args[1:])
	case "nc":
		code = nc(os.Args[1:])
	default:
		fmt.Fprintf(os.Stderr, "%s: run as nmeter, curl or nc\n", os.Args[0])
		code = 127
	}
	os.Exit(code)
}

// ---- nmeter

type meterItem struct {
	literal string
	time    bool
	prec    int
}

func nmeterUsage() int {
	fmt.Fprintln(os.Stderr, "Usage: nmeter [-d MSEC] FORMAT_STRING (this nmeter knows %Nt, %[tN], %r and %%)")
	return 1
}

func nmeter(args []string) int {
	delay := 1000
	var format string
	haveFormat := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-d":
			if i+1 >= len(args) {
				return nmeterUsage()
			}
			i++
			a = "-d" + args[i]
			fallthrough
		case strings.HasPrefix(a, "-d") && !haveFormat:
			n, err := strconv.Atoi(a[2:])
			if err != nil {
				fmt.Fprintf(os.Stderr, "nmeter: invalid number '%s'\n", a[2:])
				return 1
			}
			delay = n
		case !haveFormat:
			format, haveFormat = a, true
		}
	}
	if !haveFormat {
		return nmeterUsage()
	}
	var items []meterItem
	final := "\n"
	lit := ""
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			lit += string(c)
			continue
		}
		i++
		if i >= len(format) {
			return nmeterUsage()
		}
		if format[i] == '%' {
			lit += "%"
			continue
		}
		var spec byte
		param := ""
		if format[i] == '[' {
			end := strings.IndexByte(format[i:], ']')
			if end < 2 {
				return nmeterUsage()
			}
			spec, param = format[i+1], format[i+2:i+end]
			i += end
		} else {
			j := i
			for j < len(format) && format[j] >= '0' && format[j] <= '9' {
				j++
			}
			if j >= len(format) {
				return nmeterUsage()
			}
			spec, param = format[j], format[i:j]
			i = j
		}
		switch spec {
		case 'r':
			final = "\r"
		case 't':
			prec := 0
			if param != "" {
				prec = int(param[0] - '0')
			}
			if prec < 0 {
				prec = 0
			} else if prec > 6 {
				prec = 6
			}
			items = append(items, meterItem{literal: lit}, meterItem{time: true, prec: prec})
			lit = ""
		default:
			return nmeterUsage()
		}
	}
	if lit != "" {
		items = append(items, meterItem{literal: lit})
	}
	step := time.Duration(delay) * time.Millisecond
	if delay > 0 {
		time.Sleep(step - time.Duration(time.Now().UnixNano()%int64(step)))
	}
	for {
		now := time.Now()
		var sb strings.Builder
		for _, it := range items {
			if !it.time {
				sb.WriteString(it.literal)
				continue
			}
			sb.WriteString(clock(now, it.prec))
		}
		sb.WriteString(final)
		if _, err := os.Stdout.WriteString(sb.String()); err != nil {
			return 1
		}
		if delay > 0 {
			time.Sleep(step - time.Duration(time.Now().UnixNano()%int64(step)))
		}
	}
}

// clock is busybox's: hh:mm:ss of the local time with prec decimals,
// rounded to the nearest 10^-prec second.
func clock(now time.Time, prec int) string {
	scale := 1
	for p := prec; p < 6; p++ {
		scale *= 10
	}
	us := now.Nanosecond()/1000 + scale/2
	sec := now.Unix()
	if us >= 1000000 {
		sec++
		us -= 1000000
	}
	t := time.Unix(sec, 0).Local()
	s := fmt.Sprintf("%02d:%02d:%02d", t.Hour(), t.Minute(), t.Second())
	if prec > 0 {
		s += fmt.Sprintf(".%0*d", prec, us/scale)
	}
	return s
}

// ---- curl

func curl(args []string) int {
	var (
		silent, showErr, include, fail, insecure, follow bool
		output, writeOut, method, data                   string
		maxTime, connectTimeout                          time.Duration
		headers                                          []string
		rawURL                                           string
	)
	value := func(i *int, name string) (string, bool) {
		if *i+1 >= len(args) {
			fmt.Fprintf(os.Stderr, "curl: option %s: requires parameter\n", name)
			return "", false
		}
		*i++
		return args[*i], true
	}
	seconds := func(s string) (time.Duration, bool) {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < 0 {
			fmt.Fprintf(os.Stderr, "curl: expected a proper numerical parameter, got %q\n", s)
			return 0, false
		}
		return time.Duration(f * float64(time.Second)), true
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			rawURL = a
			continue
		}
		if !strings.HasPrefix(a, "--") && len(a) > 2 {
			// Bundled short flags (-sS, -gqs); the last one may take a value.
			var expanded []string
			for j := 1; j < len(a); j++ {
				expanded = append(expanded, "-"+a[j:j+1])
				if strings.ContainsRune("owmXHd", rune(a[j])) && j+1 < len(a) {
					expanded = append(expanded, a[j+1:])
					break
				}
			}
			args = append(args[:i], append(expanded, args[i+1:]...)...)
			a = args[i]
		}
		var ok = true
		var v string
		switch a {
		case "-g", "--globoff", "-q", "--disable":
		case "-s", "--silent":
			silent = true
		case "-S", "--show-error":
			showErr = true
		case "-i", "--include":
			include = true
		case "-f", "--fail":
			fail = true
		case "-k", "--insecure":
			insecure = true
		case "-L", "--location":
			follow = true
		case "-o", "--output":
			output, ok = value(&i, a)
		case "-w", "--write-out":
			writeOut, ok = value(&i, a)
		case "-X", "--request":
			method, ok = value(&i, a)
		case "-d", "--data":
			data, ok = value(&i, a)
		case "-H", "--header":
			v, ok = value(&i, a)
			headers = append(headers, v)
		case "-m", "--max-time":
			if v, ok = value(&i, a); ok {
				maxTime, ok = seconds(v)
			}
		case "--connect-timeout":
			if v, ok = value(&i, a); ok {
				connectTimeout, ok = seconds(v)
			}
		default:
			fmt.Fprintf(os.Stderr, "curl: option %s: is unknown\n", a)
			return 2
		}
		if !ok {
			return 2
		}
	}
	report := func(code int, format string, a ...any) int {
		if !silent || showErr {
			fmt.Fprintf(os.Stderr, "curl: (%d) %s\n", code, fmt.Sprintf(format, a...))
		}
		if writeOut != "" {
			os.Stdout.WriteString(expandWriteOut(writeOut, 0))
		}
		return code
	}
	if rawURL == "" {
		fmt.Fprintln(os.Stderr, "curl: no URL specified")
		return 2
	}
	if !strings.Contains(rawURL, "://") {
		rawURL = "http://" + rawURL
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return report(3, "URL rejected: Malformed input to a URL function")
	}
	if method == "" {
		method = http.MethodGet
		if data != "" {
			method = http.MethodPost
		}
	}
	var body io.Reader
	if data != "" {
		body = strings.NewReader(data)
	}
	req, err := http.NewRequest(method, u.String(), body)
	if err != nil {
		return report(3, "%v", err)
	}
	req.Header.Set("User-Agent", "curl/testenv")
	req.Header.Set("Accept", "*/*")
	if data != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, h := range headers {
		if k, v, ok := strings.Cut(h, ":"); ok {
			req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	dialer := &net.Dialer{Timeout: connectTimeout}
	if connectTimeout == 0 {
		dialer.Timeout = 300 * time.Second
	}
	client := &http.Client{
		Timeout: maxTime,
		Transport: &http.Transport{
			Proxy:             nil,
			DialContext:       dialer.DialContext,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: insecure},
			DisableKeepAlives: true,
		},
	}
	if !follow {
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	resp, err := client.Do(req)
	if err != nil {
		return report(curlCode(err), "%v", err)
	}
	defer resp.Body.Close()
	if fail && resp.StatusCode >= 400 {
		return report(22, "The requested URL returned error: %d", resp.StatusCode)
	}
	var w io.Writer = os.Stdout
	if output != "" && output != "-" {
		f, err := os.Create(output)
		if err != nil {
			return report(23, "Failure writing output to destination: %v", err)
		}
		defer f.Close()
		w = f
	}
	if include {
		fmt.Fprintf(w, "%s %s\r\n", resp.Proto, resp.Status)
		resp.Header.Write(w)
		io.WriteString(w, "\r\n")
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return report(curlCode(err), "%v", err)
	}
	if writeOut != "" {
		os.Stdout.WriteString(expandWriteOut(writeOut, resp.StatusCode))
	}
	return 0
}

func expandWriteOut(format string, code int) string {
	c := fmt.Sprintf("%03d", code)
	r := strings.NewReplacer("%{http_code}", c, "%{response_code}", c, "\\n", "\n", "\\r", "\r", "\\t", "\t")
	return r.Replace(format)
}

// curlCode maps a request error to curl's exit code.
func curlCode(err error) int {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var certErr *tls.CertificateVerificationError
	var netErr net.Error
	switch {
	case errors.As(err, &certErr):
		return 60
	case errors.As(err, &dnsErr):
		return 6
	case errors.As(err, &netErr) && netErr.Timeout():
		return 28
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return 7
	}
	return 56
}

// ---- nc

func nc(args []string) int {
	udp, verbose, zero, shutdown := false, false, false, false
	var wait time.Duration
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			rest = append(rest, a)
			continue
		}
		for j := 1; j < len(a); j++ {
			switch a[j] {
			case 'u':
				udp = true
			case 'v':
				verbose = true
			case 'z':
				zero = true
			case 'n':
			case 'N':
				shutdown = true
			case 'w':
				v := a[j+1:]
				if v == "" {
					if i+1 >= len(args) {
						fmt.Fprintln(os.Stderr, "nc: option requires an argument -- w")
						return 1
					}
					i++
					v = args[i]
				}
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 {
					fmt.Fprintf(os.Stderr, "nc: timeout %s: invalid\n", v)
					return 1
				}
				wait = time.Duration(n) * time.Second
				j = len(a)
			default:
				fmt.Fprintf(os.Stderr, "nc: invalid option -- '%c' (this nc knows -u -w -v -z -n -N)\n", a[j])
				return 1
			}
		}
	}
	if len(rest) != 2 {
		fmt.Fprintln(os.Stderr, "usage: nc [-uvz] [-w timeout] destination port")
		return 1
	}
	network := "tcp"
	if udp {
		network = "udp"
	}
	addr := net.JoinHostPort(rest[0], rest[1])
	d := net.Dialer{Timeout: wait}
	conn, err := d.Dial(network, addr)
	if err != nil {
		if verbose || !udp {
			fmt.Fprintf(os.Stderr, "nc: connect to %s (%s) failed: %v\n", addr, network, err)
		}
		return 1
	}
	defer conn.Close()
	if verbose {
		fmt.Fprintf(os.Stderr, "Connection to %s port %s [%s] succeeded!\n", rest[0], rest[1], network)
	}
	if zero {
		return 0
	}
	// activity carries a token each time either side moves data, so -w
	// counts idle time as OpenBSD netcat's poll loop does.
	activity := make(chan struct{}, 1)
	touch := func() {
		select {
		case activity <- struct{}{}:
		default:
		}
	}
	peerDone := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			if n > 0 {
				touch()
				if _, werr := os.Stdout.Write(buf[:n]); werr != nil {
					peerDone <- werr
					return
				}
			}
			if err != nil {
				peerDone <- err
				return
			}
		}
	}()
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := os.Stdin.Read(buf)
			if n > 0 {
				touch()
				if _, werr := conn.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				if tc, ok := conn.(*net.TCPConn); ok && shutdown {
					tc.CloseWrite()
				}
				return
			}
		}
	}()
	var idle <-chan time.Time
	for {
		if wait > 0 {
			idle = time.After(wait)
		}
		select {
		case <-activity:
		case err := <-peerDone:
			if errors.Is(err, io.EOF) {
				return 0
			}
			if verbose {
				fmt.Fprintf(os.Stderr, "nc: %v\n", err)
			}
			return 1
		case <-idle:
			return 0
		}
	}
}
`

// pauseSource is a pause for images built FROM scratch: as upstream's
// pause.c it reaps every child it gets (as PID 1 it adopts orphans), exits 0
// on SIGINT or SIGTERM, and warns when it is not PID 1.
const pauseSource = `package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("pause (testenv stand-in for registry.k8s.io/pause)")
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "Warning: pause should be the first process")
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s == syscall.SIGCHLD {
			for {
				pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		fmt.Fprintf(os.Stderr, "Shutting down, got signal: %v\n", s)
		os.Exit(0)
	}
}
`
