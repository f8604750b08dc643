package testenv

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// Upstream's ash keeps environment entries whose names are not shell
// identifiers ("data-1=value-1") and passes them on to the commands it runs
// (busybox commit 9c143ce5, 1.28, "retain envvars with bad names in
// initial environment"); the busybox of upstream's test image does, and the
// node e2e ConfigMap and Secret env specs (`sh -c env`) count on it.
// Debian reverts that commit (debian/patches/revert-9c143ce5...patch) and
// puts it back behind FEATURE_DI_ENV_HACK, which only its installer build
// turns on, so Debian's busybox package drops them. The node e2e stand-in
// therefore runs Debian's busybox source built with Debian's own config
// (debian/config/pkg/deb, the same applets as the package) plus that one
// option: an ash that behaves as upstream's, error messages and all.

var busyboxSourceMu sync.Mutex

// BusyboxUpstreamEnv returns the path of that busybox, built once into
// cacheDir from the source apt-get fetches for Debian's busybox (through a
// sources list of its own: the host's apt configuration is not touched).
// It needs gcc, make, patch, bzip2 and xz; a cold build takes about two
// minutes on two cores.
func BusyboxUpstreamEnv(cacheDir string) (string, error) {
	busyboxSourceMu.Lock()
	defer busyboxSourceMu.Unlock()
	out := filepath.Join(cacheDir, "busybox-upstream-env", "busybox")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	tmp, err := os.MkdirTemp("", "testenv-busybox-src-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	src, err := aptSource(tmp, "busybox")
	if err != nil {
		return "", err
	}
	run := func(dir, name string, args ...string) error {
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		if o, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, Tail(string(o), 20))
		}
		return nil
	}
	orig, _ := filepath.Glob(filepath.Join(src, "busybox_*.orig.tar.*"))
	deb, _ := filepath.Glob(filepath.Join(src, "busybox_*.debian.tar.*"))
	if len(orig) != 1 || len(deb) != 1 {
		return "", fmt.Errorf("apt-get source busybox: want one orig and one debian tarball in %s, got %v %v", src, orig, deb)
	}
	if err := run(src, "tar", "xf", orig[0]); err != nil {
		return "", err
	}
	trees, _ := filepath.Glob(filepath.Join(src, "busybox-*"))
	if len(trees) != 1 {
		return "", fmt.Errorf("busybox source: want one tree in %s, got %v", src, trees)
	}
	tree := trees[0]
	if err := run(tree, "tar", "xf", deb[0]); err != nil {
		return "", err
	}
	series, err := os.Open(filepath.Join(tree, "debian", "patches", "series"))
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(series)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		if err := run(tree, "patch", "-s", "-p1", "-i", filepath.Join("debian", "patches", p)); err != nil {
			series.Close()
			return "", err
		}
	}
	series.Close()
	cfg, err := os.ReadFile(filepath.Join(tree, "debian", "config", "pkg", "deb"))
	if err != nil {
		return "", err
	}
	const off, on = "# CONFIG_FEATURE_DI_ENV_HACK is not set", "CONFIG_FEATURE_DI_ENV_HACK=y"
	if !strings.Contains(string(cfg), off) {
		return "", fmt.Errorf("busybox source: Debian's config has no %q line; the env hack moved", off)
	}
	if err := os.WriteFile(filepath.Join(tree, ".config"), []byte(strings.Replace(string(cfg), off, on, 1)), 0o644); err != nil {
		return "", err
	}
	// Options the config leaves unanswered take their defaults.
	if err := run(tree, "sh", "-c", "yes '' | make oldconfig"); err != nil {
		return "", err
	}
	if err := run(tree, "make", "-j"+strconv.Itoa(runtime.NumCPU()), "busybox"); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	data, err := os.ReadFile(filepath.Join(tree, "busybox"))
	if err != nil {
		return "", err
	}
	// Written whole, then renamed: a half-written binary is never cached.
	if err := os.WriteFile(out+".tmp", data, 0o755); err != nil {
		return "", err
	}
	return out, os.Rename(out+".tmp", out)
}

// aptSource downloads the source package of pkg into dir/src with apt-get,
// from the deb-src twin of the host's first Debian suite, using a sources
// list, package lists and cache under dir.
func aptSource(dir, pkg string) (string, error) {
	uri, suite := debianMirror()
	list := filepath.Join(dir, "sources.list")
	line := fmt.Sprintf("deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n", uri, suite)
	if err := os.WriteFile(list, []byte(line), 0o644); err != nil {
		return "", err
	}
	for _, d := range []string{"lists/partial", "cache/archives/partial", "src"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", err
		}
	}
	opts := []string{
		"-o", "Dir::Etc::SourceList=" + list, "-o", "Dir::Etc::SourceParts=/dev/null",
		"-o", "Dir::State::Lists=" + filepath.Join(dir, "lists"), "-o", "Dir::Cache=" + filepath.Join(dir, "cache"),
	}
	if o, err := exec.Command("apt-get", append(opts, "update")...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get update (deb-src %s %s): %v: %s", uri, suite, err, Tail(string(o), 10))
	}
	cmd := exec.Command("apt-get", append(opts, "source", "--download-only", pkg)...)
	cmd.Dir = filepath.Join(dir, "src")
	if o, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get source --download-only %s: %v: %s", pkg, err, Tail(string(o), 10))
	}
	return cmd.Dir, nil
}

// debianMirror reads the host's Debian mirror and suite from its apt
// sources (deb822 or one-line form); deb.debian.org and bookworm, this
// machine's, where they cannot be read.
func debianMirror() (uri, suite string) {
	uri, suite = "http://deb.debian.org/debian", "bookworm"
	if b, err := os.ReadFile("/etc/apt/sources.list.d/debian.sources"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(l, ":")
			if !ok {
				continue
			}
			f := strings.Fields(v)
			if len(f) == 0 {
				continue
			}
			switch strings.TrimSpace(k) {
			case "URIs":
				uri = f[0]
			case "Suites":
				suite = f[0]
				return uri, suite
			}
		}
	}
	if b, err := os.ReadFile("/etc/apt/sources.list"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 3 && f[0] == "deb" && !strings.HasPrefix(f[1], "[") {
				return f[1], f[2]
			}
		}
	}
	return uri, suite
}
