package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

var (
	baseOnce sync.Once
	baseImg  v1.Image
	baseErr  error
)

func base(t *testing.T) v1.Image {
	t.Helper()
	needRoot(t)
	baseOnce.Do(func() { baseImg, baseErr = BuildBusybox(DefaultCacheDir()) })
	if baseErr != nil {
		t.Fatal(baseErr)
	}
	return baseImg
}

func unpacked(t *testing.T, img v1.Image) string {
	t.Helper()
	dir := t.TempDir()
	if err := Unpack(img, dir); err != nil {
		t.Fatal(err)
	}
	// What a runtime provides: /dev/null (sh redirects background jobs' stdin).
	run(t, "mknod", "-m", "666", filepath.Join(dir, "dev/null"), "c", "1", "3")
	return dir
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func TestBuildBusyboxDeterministic(t *testing.T) {
	img := base(t)
	again, err := BuildBusybox(DefaultCacheDir())
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Fatalf("two builds differ: %s %s", d1, d2)
	}
	cf, _ := img.ConfigFile()
	if cf.Config.Cmd[0] != "sh" || cf.Config.Env[0] != "PATH="+DefaultPath || cf.OS != "linux" {
		t.Fatalf("config: %+v", cf.Config)
	}
	layers, _ := img.Layers()
	if len(layers) != 1 {
		t.Fatalf("%d layers", len(layers))
	}
}

func TestBusyboxRuns(t *testing.T) {
	dir := unpacked(t, base(t))
	out := run(t, "unshare", "--pid", "--mount", "--fork", "--kill-child", "chroot", dir, "/bin/sh", "-c", `mount -t proc proc /proc; echo ok; ls /; wget --help >/dev/null 2>&1; echo wget=$?;
		httpd --help >/dev/null 2>&1; echo httpd=$?;
		sleep 30 & pgrep -x sleep >/dev/null; echo pgrep=$?; kill $!;
		ipcs -m | head -n 2; id www-data; id default-user`)
	for _, want := range []string{"ok\n", "bin\n", "wget=0\n", "httpd=0\n", "pgrep=0\n", "Shared Memory Segments",
		"uid=33(www-data) gid=33(www-data)", "uid=1000(default-user) gid=1000(default-user) groups=1000(default-user),50000(group-defined-in-image)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Applets are hard links to /bin/busybox, with its mode.
	bb, err := os.Stat(filepath.Join(dir, "bin/busybox"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"bin/ls", "bin/sh", "usr/bin/wget", "usr/sbin/httpd"} {
		fi, err := os.Lstat(filepath.Join(dir, a))
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(bb, fi) {
			t.Errorf("%s is not a hard link to /bin/busybox", a)
		}
	}
	if bb.Mode().Perm() != 0o755 {
		t.Errorf("/bin/busybox mode %v", bb.Mode())
	}
	if fi, _ := os.Stat(filepath.Join(dir, "tmp")); fi.Mode()&os.ModeSticky == 0 {
		t.Errorf("/tmp mode %v", fi.Mode())
	}
	// A masked /bin/ls must make ls fail (no standalone-shell applets).
	run(t, "unshare", "--mount", "chroot", dir, "/bin/sh", "-c",
		`mount --bind /dev/null /bin/ls 2>/dev/null || mount -o bind /etc/group /bin/ls; if ls / >/dev/null 2>&1; then echo ls still works; exit 1; fi`)
}

func images(t *testing.T) map[string]Artifact {
	t.Helper()
	imgs, err := CritestImages(base(t), DefaultCacheDir())
	if err != nil {
		t.Fatal(err)
	}
	return imgs
}

func imageOf(t *testing.T, a Artifact) v1.Image {
	t.Helper()
	switch a := a.(type) {
	case v1.Image:
		return a
	case v1.ImageIndex:
		m, err := a.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		img, err := a.Image(m.Manifests[0].Digest)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	t.Fatalf("%T", a)
	return nil
}

func TestCritestImagesTable(t *testing.T) {
	imgs := images(t)
	if len(imgs) != 37 {
		t.Errorf("%d images", len(imgs))
	}
	shapes := map[types.MediaType]int{}
	for ref, a := range imgs {
		mt, err := a.MediaType()
		if err != nil {
			t.Fatal(err)
		}
		shapes[mt]++
		if _, err := name.ParseReference(ref, name.StrictValidation); err != nil {
			t.Error(err)
		}
	}
	for _, mt := range []types.MediaType{types.DockerManifestSchema2, types.OCIManifestSchema1, types.DockerManifestList, types.OCIImageIndex} {
		if shapes[mt] == 0 {
			t.Errorf("no %s", mt)
		}
	}
	digest := func(ref string) v1.Hash {
		d, err := imageOf(t, imgs[ref]).ConfigName()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	distinct := func(refs ...string) {
		seen := map[v1.Hash]string{}
		for _, r := range refs {
			if o, ok := seen[digest(r)]; ok {
				t.Errorf("%s and %s are the same image", o, r)
			}
			seen[digest(r)] = r
		}
	}
	distinct("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.6")
	distinct("gcr.io/k8s-staging-cri-tools/test-image-1:latest", "gcr.io/k8s-staging-cri-tools/test-image-2:latest", "gcr.io/k8s-staging-cri-tools/test-image-3:latest")
	const ecr = "public.ecr.aws/docker/library/busybox:"
	distinct(ecr+"1.35.0-glibc", ecr+"1-uclibc", ecr+"1", ecr+"1-glibc", ecr+"1-musl")
	for _, r := range []string{"2", "3"} {
		if imgs["gcr.io/k8s-staging-cri-tools/test-image-tags:"+r] != imgs["gcr.io/k8s-staging-cri-tools/test-image-tags:1"] {
			t.Error("test-image-tags tags differ")
		}
	}
	users := map[string]string{
		"gcr.io/k8s-staging-cri-tools/test-image-user-uid:latest":            "1002",
		"gcr.io/k8s-staging-cri-tools/test-image-user-username:latest":       "www-data",
		"gcr.io/k8s-staging-cri-tools/test-image-user-uid-group:latest":      "1003:1004",
		"gcr.io/k8s-staging-cri-tools/test-image-user-username-group:latest": "www-data:1004",
		"gcr.io/k8s-staging-cri-tools/test-image-predefined-group:latest":    "1000",
		"registry.k8s.io/pause:3.10":                                         "65535:65535",
		"registry.k8s.io/e2e-test-images/nonewprivs:1.3":                     "nobody",
	}
	for ref, u := range users {
		cf, err := imageOf(t, imgs[ref]).ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Config.User != u {
			t.Errorf("%s: user %q, want %q", ref, cf.Config.User, u)
		}
	}
}

func TestNginxStandIn(t *testing.T) {
	for _, c := range []struct{ ref, port string }{
		{"registry.k8s.io/e2e-test-images/nginx:1.14-2", "80"},
		{"gcr.io/k8s-staging-cri-tools/hostnet-nginx-amd64:latest", "12003"},
	} {
		dir := unpacked(t, imageOf(t, images(t)[c.ref]))
		// In new net/pid/mount namespaces, so port 80 is the namespace's own loopback.
		out := run(t, "unshare", "--net", "--pid", "--mount", "--fork", "--kill-child", "chroot", dir, "/bin/sh", "-c", `
			mount -t proc proc /proc; ip link set lo up
			NGINX_PORT=`+c.port+` /docker-entrypoint.sh & 
			for i in $(seq 50); do [ -s /var/run/nginx.pid ] && wget -q -O /dev/null http://127.0.0.1:`+c.port+`/ 2>/dev/null && break; sleep 0.1; done
			pid=$(cat /var/run/nginx.pid)
			echo pid=$pid pidof=$(pidof nginx) pgrep=$(pgrep -x nginx | tr '\n' ' ')
			tr '\0' ' ' < /proc/$pid/cmdline; echo
			wget -q -O - http://127.0.0.1:`+c.port+`/
			kill -TERM $pid; wait $!; echo exit=$?`)
		m := regexp.MustCompile(`pid=(\d+) pidof=([\d ]*) pgrep=([\d ]*)`).FindStringSubmatch(out)
		if m == nil || !slices.Contains(strings.Fields(m[2]), m[1]) || !slices.Contains(strings.Fields(m[3]), m[1]) {
			t.Errorf("%s: nginx pid not found by name:\n%s", c.ref, out)
		}
		for _, want := range []string{"nginx: master process", "Welcome to nginx!", "exit=0"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: output lacks %q:\n%s", c.ref, want, out)
			}
		}
	}
}

func TestPauseAndNoNewPrivs(t *testing.T) {
	imgs := images(t)
	dir := unpacked(t, imageOf(t, imgs["registry.k8s.io/pause:3.9"]))
	out := run(t, "unshare", "--pid", "--fork", "--kill-child", "chroot", "--userspec=65535:65535", dir, "/bin/sh", "-c",
		`/pause & p=$!; sleep 0.3; kill -TERM $p; wait $p; echo exit=$?`)
	if !strings.Contains(out, "exit=0") {
		t.Errorf("pause: %s", out)
	}

	dir = unpacked(t, imageOf(t, imgs["registry.k8s.io/e2e-test-images/nonewprivs:1.3"]))
	if out := run(t, "chroot", "--userspec=1000:1000", dir, "/usr/local/bin/nnp"); out != "Effective uid: 0\n" {
		t.Errorf("nonewprivs without NNP: %q", out)
	}
	if out := run(t, "setpriv", "--no-new-privs", "chroot", "--userspec=1000:1000", dir, "/usr/local/bin/nnp"); out != "Effective uid: 1000\n" {
		t.Errorf("nonewprivs with NNP: %q", out)
	}

	dir = unpacked(t, imageOf(t, imgs["registry.k8s.io/e2e-test-images/httpd:2.4.39-4"]))
	out = run(t, "unshare", "--net", "--pid", "--fork", "--kill-child", "chroot", dir, "/bin/sh", "-c", `ip link set lo up
		httpd-foreground 2>/tmp/log & p=$!
		for i in $(seq 50); do wget -q -O - http://127.0.0.1/ 2>/dev/null && break; sleep 0.1; done
		kill $p; head -n 1 /tmp/log`)
	if !strings.Contains(out, "It works!") || !strings.Contains(out, "httpd:") {
		t.Errorf("httpd: %s", out)
	}
}

func TestRegistryPushPull(t *testing.T) {
	img := base(t)
	reg := StartRegistry(t)
	ctx := context.Background()

	check := func(ref string, want Artifact) {
		t.Helper()
		r, err := name.ParseReference(ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Get(r, remote.WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		wd, _ := want.Digest()
		wmt, _ := want.MediaType()
		if desc.Digest != wd || desc.MediaType != wmt {
			t.Errorf("%s: got %s %s, want %s %s", ref, desc.Digest, desc.MediaType, wd, wmt)
		}
	}

	if err := Push(ctx, img, reg.Ref("busybox:plain")); err != nil {
		t.Fatal(err)
	}
	check(reg.Ref("busybox:plain"), img)
	r, _ := name.ParseReference(reg.Ref("busybox:plain"), name.Insecure)
	pulled, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	pd, _ := pulled.Digest()
	wd, _ := img.Digest()
	if pd != wd {
		t.Fatalf("pulled %s, pushed %s", pd, wd)
	}

	for _, mt := range []types.MediaType{types.OCIImageIndex, types.DockerManifestList} {
		ref := reg.Ref("busybox:index-oci")
		if mt == types.DockerManifestList {
			ref = reg.Ref("busybox:index-docker")
		}
		if err := PushIndex(ctx, img, ref, mt); err != nil {
			t.Fatal(err)
		}
		idx, _ := Index(img, mt)
		check(ref, idx)
		r, _ := name.ParseReference(ref, name.Insecure)
		pi, err := remote.Image(r) // resolves the platform, like a runtime's pull
		if err != nil {
			t.Fatal(err)
		}
		got, _ := pi.Digest()
		want, _ := imageOf(t, idx).Digest()
		if got != want {
			t.Errorf("%s: platform image %s, want %s", ref, got, want)
		}
	}

	if err := PushCritestImages(ctx, reg.Addr, img, DefaultCacheDir()); err != nil {
		t.Fatal(err)
	}
	for ref, a := range images(t) {
		check(reg.Ref(MirrorPath(ref)), a)
	}

	certs := t.TempDir()
	if err := WriteMirrorHosts(certs, reg.Addr, CritestUpstreamHosts); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(certs, "docker.io", "hosts.toml"))
	if err != nil {
		t.Fatal(err)
	}
	want := "server = \"http://" + reg.Addr + "\"\n\n[host.\"http://" + reg.Addr + "\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
	if string(b) != want {
		t.Errorf("hosts.toml:\n%s", b)
	}
}

func TestRegistryProcessStop(t *testing.T) {
	needRoot(t)
	r, err := StartRegistryProcess(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if r.cmd.ProcessState == nil {
		t.Fatal("registry not reaped")
	}
}
