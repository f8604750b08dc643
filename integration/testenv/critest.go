package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// CritestUpstreamHosts are the registry hosts of CritestImages' references;
// each needs a mirror hosts.toml (WriteMirrorHosts).
var CritestUpstreamHosts = []string{
	"registry.k8s.io", "k8s.gcr.io", "gcr.io", "public.ecr.aws", "docker.io", "quay.io",
}

// The pause stand-in: sleeps, reaps (wait(1) with no job reaps any child,
// also adopted ones when it is PID 1) and exits 0 on TERM or INT.
const pauseScript = `#!/bin/sh
trap 'kill $! 2>/dev/null; exit 0' TERM INT
while :; do sleep 3600 & wait; done
`

// The nginx stand-in. Its "master" is busybox sh exec'd through the path
// /usr/sbin/nginx (a symlink to /bin/busybox), so the kernel names the
// process "nginx" (comm comes from the executed path: pidof/pgrep nginx find
// it), while argv[0] "nginx: master process /bin/sh" both shows in
// /proc/PID/cmdline, as real nginx's does, and makes busybox run its "sh"
// applet (busybox dispatches on the last path component of argv[0]). The
// master writes its pid to /var/run/nginx.pid, starts busybox httpd the same
// way as "nginx: worker process /usr/sbin/httpd", and exits 0 on TERM/INT/QUIT.
const nginxEntrypoint = `#!/bin/sh
exec -a "nginx: master process /bin/sh" /usr/sbin/nginx /etc/nginx/master.sh "$@"
`

const nginxMaster = `echo $$ > /var/run/nginx.pid
trap 'kill -TERM $worker 2>/dev/null; wait $worker; exit 0' TERM INT QUIT
(exec -a "nginx: worker process /usr/sbin/httpd" /usr/sbin/nginx -f -p "${NGINX_PORT:-80}" -h /usr/share/nginx/html) &
worker=$!
wait $worker
`

const nginxIndex = `<!DOCTYPE html>
<html><head><title>Welcome to nginx!</title></head>
<body><h1>Welcome to nginx!</h1></body></html>
`

// The httpd stand-in: busybox httpd on port 80; its first log line names httpd.
const httpdEntrypoint = `#!/bin/sh
echo "httpd: busybox httpd stand-in for Apache httpd, listening on port 80" >&2
exec /usr/sbin/httpd -f -v -p 80 -h /usr/local/apache2/htdocs
`

const httpdIndex = "<html><body><h1>It works!</h1></body></html>\n"

// The nonewprivs program: a setuid-root static binary that prints its
// effective uid (built with the Go toolchain, see nonewprivsBinary).
const nonewprivsSource = `package main

import (
	"fmt"
	"os"
)

func main() { fmt.Printf("Effective uid: %d\n", os.Geteuid()) }
`

// CritestImages builds a stand-in for every reference critest (cri-tools
// v1.36.0) pulls, keyed by the upstream reference (see
// /work/shared/critest-images.md). The values are v1.Image (Docker schema 2 or
// OCI manifest) or v1.ImageIndex (Docker manifest list or OCI index), mixed.
// References that share a mirror path (registry.k8s.io/pause:3.9 and
// k8s.gcr.io/pause:3.9) get the same artifact. cacheDir holds the compiled
// nonewprivs program.
func CritestImages(base v1.Image, cacheDir string) (map[string]Artifact, error) {
	out := map[string]Artifact{}
	var err error
	// shape turns an image into the given manifest shape.
	type shape int
	const (
		docker shape = iota
		oci
		dockerList
		ociIndex
	)
	as := func(img v1.Image, s shape) (Artifact, error) {
		switch s {
		case docker:
			return ToDocker(img)
		case oci:
			return ToOCI(img)
		case dockerList:
			return Index(img, types.DockerManifestList)
		default:
			return Index(img, types.OCIImageIndex)
		}
	}
	add := func(s shape, img v1.Image, refs ...string) {
		if err != nil {
			return
		}
		var a Artifact
		if a, err = as(img, s); err != nil {
			err = fmt.Errorf("%s: %w", refs[0], err)
			return
		}
		for _, r := range refs {
			out[r] = a
		}
	}
	must := func(img v1.Image, e error) v1.Image {
		if e != nil && err == nil {
			err = e
		}
		return img
	}
	marker := func(file, content string) v1.Image {
		return must(WithFile(base, file, []byte(content+"\n"), 0o644))
	}

	// Default test container image.
	const e2e = "registry.k8s.io/e2e-test-images/"
	add(dockerList, base, e2e+"busybox:1.29-2")
	add(ociIndex, base, e2e+"busybox:1.29-4")
	add(oci, base, e2e+"busybox:1.36.1-1")

	// nginx and the host-network nginx on port 12003.
	ng := must(nginxStandIn(base, "80"))
	add(dockerList, ng, e2e+"nginx:1.14-2")
	add(docker, ng, e2e+"nginx:1.14-4")
	add(ociIndex, ng, e2e+"nginx:1.15-4")
	add(docker, must(nginxStandIn(base, "12003")), "gcr.io/k8s-staging-cri-tools/hostnet-nginx-amd64:latest")

	// httpd.
	httpd := must(WithFiles(base, map[string]File{
		"/usr/local/bin/httpd-foreground":      {Content: []byte(httpdEntrypoint), Mode: 0o755},
		"/usr/local/apache2/htdocs/index.html": {Content: []byte(httpdIndex), Mode: 0o644},
	}))
	if err == nil {
		httpd = must(WithConfig(httpd, func(c *v1.Config) {
			c.Cmd = []string{"httpd-foreground"}
			c.ExposedPorts = map[string]struct{}{"80/tcp": {}}
		}))
	}
	add(dockerList, httpd, e2e+"httpd:2.4.39-4")
	add(oci, httpd, e2e+"httpd:2.4.38-4")

	// nonewprivs: USER nobody, a setuid-root program printing its euid.
	if err == nil {
		var prog []byte
		if prog, err = nonewprivsBinary(cacheDir); err == nil {
			nnp := must(WithFile(base, "/usr/local/bin/nnp", prog, 0o4755))
			if err == nil {
				nnp = must(WithConfig(nnp, func(c *v1.Config) {
					c.User = "nobody"
					c.Entrypoint = []string{"/usr/local/bin/nnp"}
					c.Cmd = nil
				}))
			}
			add(docker, nnp, e2e+"nonewprivs:1.3")
		}
	}

	// Images with USER values.
	const stg = "gcr.io/k8s-staging-cri-tools/"
	user := func(u string) v1.Image {
		return must(WithConfig(base, func(c *v1.Config) { c.User = u }))
	}
	add(oci, user("1002"), stg+"test-image-user-uid:latest")
	add(docker, user("www-data"), stg+"test-image-user-username:latest")
	add(ociIndex, user("1003:1004"), stg+"test-image-user-uid-group:latest")
	add(dockerList, user("www-data:1004"), stg+"test-image-user-username-group:latest")
	add(docker, user("1000"), stg+"test-image-predefined-group:latest")

	// test-image-N: busybox plus a file named after the image.
	add(dockerList, marker("/test-image-latest", "test-image-latest"), stg+"test-image-latest:latest")
	add(docker, marker("/test-image-1", "test-image-1"), stg+"test-image-1:latest")
	add(oci, marker("/test-image-2", "test-image-2"), stg+"test-image-2:latest")
	add(ociIndex, marker("/test-image-3", "test-image-3"), stg+"test-image-3:latest")
	add(docker, marker("/test-image-tag-test", "test-image-tag:test"), stg+"test-image-tag:test")
	add(oci, marker("/test-image-tag-all", "test-image-tag:all"), stg+"test-image-tag:all")
	add(dockerList, marker("/test-image-tags", "test-image-tags"),
		stg+"test-image-tags:1", stg+"test-image-tags:2", stg+"test-image-tags:3")

	// pause: each tag a distinct image; the same tag on both hosts is one image.
	pause := func(tag string) v1.Image {
		img := must(WithFiles(base, map[string]File{
			"/pause":         {Content: []byte(pauseScript), Mode: 0o755},
			"/pause-version": {Content: []byte(tag + "\n"), Mode: 0o644},
		}))
		if err != nil {
			return nil
		}
		return must(WithConfig(img, func(c *v1.Config) {
			c.User = "65535:65535"
			c.Entrypoint = []string{"/pause"}
			c.Cmd = nil
			c.WorkingDir = "/"
		}))
	}
	add(dockerList, pause("3.9"), "registry.k8s.io/pause:3.9", "k8s.gcr.io/pause:3.9")
	add(ociIndex, pause("3.10"), "registry.k8s.io/pause:3.10")
	add(docker, pause("3.6"), "registry.k8s.io/pause:3.6", "k8s.gcr.io/pause:3.6")

	// The -benchmark image list: five distinct busybox images.
	const ecr = "public.ecr.aws/docker/library/busybox:"
	add(dockerList, marker("/busybox-flavor", "1.35.0-glibc"), ecr+"1.35.0-glibc")
	add(docker, marker("/busybox-flavor", "1-uclibc"), ecr+"1-uclibc")
	add(ociIndex, marker("/busybox-flavor", "1"), ecr+"1")
	add(oci, marker("/busybox-flavor", "1-glibc"), ecr+"1-glibc")
	add(dockerList, marker("/busybox-flavor", "1-musl"), ecr+"1-musl")

	add(dockerList, base, "docker.io/library/busybox:1.36")
	add(ociIndex, base, "docker.io/library/busybox:latest")
	add(docker, base, "quay.io/prometheus/busybox:latest")

	if err != nil {
		return nil, err
	}
	return out, nil
}

// nginxStandIn returns base plus the nginx stand-in (see nginxEntrypoint)
// listening on port.
func nginxStandIn(base v1.Image, port string) (v1.Image, error) {
	img, err := WithFiles(base, map[string]File{
		"/docker-entrypoint.sh":            {Content: []byte(nginxEntrypoint), Mode: 0o755},
		"/etc/nginx/master.sh":             {Content: []byte(nginxMaster), Mode: 0o644},
		"/usr/sbin/nginx":                  {Link: "/bin/busybox"},
		"/usr/share/nginx/html/index.html": {Content: []byte(nginxIndex), Mode: 0o644},
	})
	if err != nil {
		return nil, err
	}
	return WithConfig(img, func(c *v1.Config) {
		c.Entrypoint = []string{"/docker-entrypoint.sh"}
		c.Cmd = nil
		c.Env = append(c.Env, "NGINX_PORT="+port)
		c.ExposedPorts = map[string]struct{}{port + "/tcp": {}}
		c.StopSignal = "SIGQUIT"
	})
}

// MirrorPath returns where an upstream reference lives in the mirror: its
// path and tag without the host ("registry.k8s.io/pause:3.9" -> "pause:3.9",
// "docker.io/library/busybox:1.36" -> "library/busybox:1.36").
func MirrorPath(upstream string) string {
	i := strings.Index(upstream, "/")
	if i < 0 {
		return upstream
	}
	return upstream[i+1:]
}

// PushCritestImages builds CritestImages(base) and pushes each under its
// mirror path to the registry at registryAddr ("127.0.0.1:PORT"). Upstream
// references that share a mirror path must carry the same artifact.
func PushCritestImages(ctx context.Context, registryAddr string, base v1.Image, cacheDir string) error {
	imgs, err := CritestImages(base, cacheDir)
	if err != nil {
		return err
	}
	return pushMirrored(ctx, registryAddr, imgs)
}

// pushMirrored pushes each artifact of imgs (keyed by upstream reference)
// under its mirror path to the registry at registryAddr. Upstream
// references that share a mirror path must carry the same artifact.
func pushMirrored(ctx context.Context, registryAddr string, imgs map[string]Artifact) error {
	refs := make([]string, 0, len(imgs))
	for r := range imgs {
		refs = append(refs, r)
	}
	sort.Strings(refs)
	pushed := map[string]v1.Hash{}
	for _, r := range refs {
		a := imgs[r]
		d, err := a.Digest()
		if err != nil {
			return err
		}
		p := MirrorPath(r)
		if prev, ok := pushed[p]; ok {
			if prev != d {
				return fmt.Errorf("%s: mirror path %s already holds %s, not %s", r, p, prev, d)
			}
			continue
		}
		if err := PushArtifact(ctx, a, registryAddr+"/"+p); err != nil {
			return err
		}
		pushed[p] = d
	}
	return nil
}

// WriteMirrorHosts writes certsDir/<host>/hosts.toml for each upstream host
// (containerd's layout), sending pulls and resolves to the plain-HTTP
// registry at registryAddr and nowhere else: server is the mirror too, so
// there is no fallback to the upstream host.
func WriteMirrorHosts(certsDir, registryAddr string, upstreamHosts []string) error {
	u := "http://" + registryAddr
	content := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", u, u)
	for _, h := range upstreamHosts {
		dir := filepath.Join(certsDir, h)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// nonewprivsBinary returns a static linux/GOARCH program that prints
// "Effective uid: N" (see goProgram).
func nonewprivsBinary(cacheDir string) ([]byte, error) {
	return goProgram(cacheDir, "nonewprivs", nonewprivsSource)
}

// goProgram returns source, a self-contained main package that needs only
// the standard library, compiled into a static linux/GOARCH program with the
// Go toolchain that runs the caller, cached in cacheDir as name-HASH (HASH
// of the source, Go version and architecture) so each program is built once.
func goProgram(cacheDir, name, source string) ([]byte, error) {
	sum := sha256.Sum256([]byte(source + runtime.Version() + runtime.GOARCH))
	cached := filepath.Join(cacheDir, name+"-"+hex.EncodeToString(sum[:8]))
	if b, err := os.ReadFile(cached); err == nil {
		return b, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, err
	}
	src, err := os.MkdirTemp("", "testenv-"+name+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(src)
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module "+name+"\n\ngo 1.21\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(source), 0o644); err != nil {
		return nil, err
	}
	goBin, err := goCommand()
	if err != nil {
		return nil, fmt.Errorf("building %s: %w", name, err)
	}
	tmpOut := cached + ".tmp"
	cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", tmpOut, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH,
		"GOTOOLCHAIN=local", "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %w: %s", name, err, out)
	}
	if err := os.Rename(tmpOut, cached); err != nil {
		return nil, err
	}
	return os.ReadFile(cached)
}

// goCommand returns the go command on PATH: under go test and go run that
// is the toolchain running the caller (both put its GOROOT/bin first on
// PATH), and make puts its $(GO) there too.
func goCommand() (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command is needed: %w", err)
	}
	return goBin, nil
}
