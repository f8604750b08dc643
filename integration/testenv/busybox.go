package testenv

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// DefaultPath is the PATH of every image built here.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// extraHostTools are programs Debian's dynamically linked busybox lacks but
// critest runs in its default image (`pgrep sleep`, `ipcs -m`). They are
// copied from the host (procps, util-linux) with the libraries ldd lists.
var extraHostTools = map[string]string{
	"/usr/bin/pgrep": "usr/bin/pgrep",
	"/usr/bin/pkill": "usr/bin/pkill",
	"/usr/bin/ipcs":  "usr/bin/ipcs",
}

const etcPasswd = `root:x:0:0:root:/root:/bin/sh
www-data:x:33:33:www-data:/var/www:/bin/sh
default-user:x:1000:1000:default-user:/home/default-user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/sh
`

const etcGroup = `root:x:0:
www-data:x:33:
default-user:x:1000:
group-defined-in-image:x:50000:default-user
nogroup:x:65534:
`

const etcNsswitch = `passwd: files
group: files
shadow: files
hosts: files dns
networks: files
protocols: files
services: files
`

var busyboxDebMu sync.Mutex

// busyboxDeb returns the path of Debian's busybox .deb in cacheDir,
// downloading it with apt-get if no .deb is there yet.
func busyboxDeb(cacheDir string) (string, error) {
	busyboxDebMu.Lock()
	defer busyboxDebMu.Unlock()
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	find := func() string {
		m, _ := filepath.Glob(filepath.Join(cacheDir, "busybox_*.deb"))
		sort.Strings(m)
		if len(m) > 0 {
			return m[len(m)-1]
		}
		return ""
	}
	if p := find(); p != "" {
		return p, nil
	}
	download := func() ([]byte, error) {
		cmd := exec.Command("apt-get", "download", "busybox")
		cmd.Dir = cacheDir
		return cmd.CombinedOutput()
	}
	out, err := download()
	if err != nil {
		// Package lists may be stale (a removed version) or absent: refresh once.
		if uout, uerr := exec.Command("apt-get", "update").CombinedOutput(); uerr != nil {
			return "", fmt.Errorf("apt-get download busybox: %v: %s; apt-get update: %v: %s", err, out, uerr, uout)
		}
		if out, err = download(); err != nil {
			return "", fmt.Errorf("apt-get download busybox (after apt-get update): %v: %s", err, out)
		}
	}
	if p := find(); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("apt-get download busybox left no busybox_*.deb in %s: %s", cacheDir, out)
}

// interpreter returns the PT_INTERP path of an ELF file ("" for a static one).
func interpreter(file string) (string, error) {
	f, err := elf.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return "", err
			}
			return string(bytes.TrimRight(b, "\x00")), nil
		}
	}
	return "", nil
}

var lddLine = regexp.MustCompile(`^\s*(\S+)\s+=>\s+(/\S+)\s+\(`)

// sharedLibs returns the absolute host paths of the libraries ldd lists for file.
func sharedLibs(file string) ([]string, error) {
	out, err := exec.Command("ldd", file).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %v: %s", file, err, out)
	}
	var libs []string
	for _, l := range strings.Split(string(out), "\n") {
		if m := lddLine.FindStringSubmatch(l); m != nil {
			libs = append(libs, m[2])
		}
	}
	return libs, nil
}

// addELF adds the host ELF file's libraries and dynamic loader to b, copying
// the real files (symlinks resolved) to the paths the loader looks them up at.
func addELF(b *layerBuilder, file string) error {
	return addLibs(b, file, func(p string) bool { _, ok := b.entries[p]; return ok })
}

// addLibs is addELF but for the libraries have says the image already
// holds (by cleaned path).
func addLibs(b *layerBuilder, file string, have func(path string) bool) error {
	libs, err := sharedLibs(file)
	if err != nil {
		return err
	}
	interp, err := interpreter(file)
	if err != nil {
		return err
	}
	if interp != "" {
		libs = append(libs, interp)
	}
	for _, l := range libs {
		if have(clean(l)) {
			continue
		}
		real, err := filepath.EvalSymlinks(l)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(real)
		if err != nil {
			return err
		}
		b.File(l, 0o755, data)
	}
	return nil
}

// BuildBusybox builds a one-layer linux/GOARCH image from Debian's
// dynamically linked busybox package (downloaded into cacheDir with
// `apt-get download busybox` and reused from there), the glibc libraries
// and loader it needs (copied from the host), applets as hard links to
// /bin/busybox, pgrep/pkill/ipcs from the host, and /etc/passwd and
// /etc/group with the users and groups critest's images need. Its manifest is
// a Docker schema 2 one; see ToOCI.
func BuildBusybox(cacheDir string) (v1.Image, error) {
	deb, err := busyboxDeb(cacheDir)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "testenv-busybox-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if out, err := exec.Command("dpkg-deb", "-x", deb, tmp).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("dpkg-deb -x %s: %v: %s", deb, err, out)
	}
	bbPath := filepath.Join(tmp, "bin", "busybox")
	bb, err := os.ReadFile(bbPath)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(bbPath, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list-full: %v", err)
	}

	b := newLayerBuilder()
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin",
		"lib", "etc", "var", "home", "proc", "sys", "dev", "mnt", "usr/share"} {
		b.Dir(d, 0o755)
	}
	b.Dir("tmp", 0o1777)
	b.Dir("var/tmp", 0o1777)
	b.Dir("root", 0o700)
	b.Dir("var/run", 0o755)
	b.Dir("var/www", 0o755)
	b.Dir("home/default-user", 0o755)
	b.entries["home/default-user"].uid, b.entries["home/default-user"].gid = 1000, 1000

	b.File("bin/busybox", 0o755, bb)
	for _, a := range strings.Fields(string(out)) {
		a = clean(a)
		switch {
		case strings.HasPrefix(a, "bin/"), strings.HasPrefix(a, "sbin/"),
			strings.HasPrefix(a, "usr/bin/"), strings.HasPrefix(a, "usr/sbin/"):
		default:
			continue // e.g. /linuxrc
		}
		if a == "bin/busybox" {
			continue
		}
		b.Hardlink(a, "bin/busybox")
	}
	if err := addELF(b, bbPath); err != nil {
		return nil, err
	}
	for host, dst := range extraHostTools {
		if target, err := os.Readlink(host); err == nil && !strings.Contains(target, "/") {
			b.Symlink(dst, target) // e.g. pkill -> pgrep
			continue
		}
		data, err := os.ReadFile(host)
		if err != nil {
			return nil, fmt.Errorf("%s (install procps and util-linux): %w", host, err)
		}
		b.File(dst, 0o755, data)
		if err := addELF(b, host); err != nil {
			return nil, err
		}
	}
	b.File("etc/passwd", 0o644, []byte(etcPasswd))
	b.File("etc/group", 0o644, []byte(etcGroup))
	b.File("etc/nsswitch.conf", 0o644, []byte(etcNsswitch))

	layer, err := b.Layer(types.DockerLayer)
	if err != nil {
		return nil, err
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Created:      v1.Time{Time: Epoch},
		Config: v1.Config{
			Env: []string{"PATH=" + DefaultPath},
			Cmd: []string{"sh"},
		},
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.DockerLayer,
		History:   v1.History{Created: v1.Time{Time: Epoch}, CreatedBy: "testenv: Debian busybox " + filepath.Base(deb)},
	})
}

// isOCI reports whether img has an OCI manifest.
func isOCI(img v1.Image) (bool, error) {
	mt, err := img.MediaType()
	if err != nil {
		return false, err
	}
	return mt == types.OCIManifestSchema1, nil
}

func layerMediaType(img v1.Image) (types.MediaType, error) {
	oci, err := isOCI(img)
	if err != nil {
		return "", err
	}
	if oci {
		return types.OCILayer, nil
	}
	return types.DockerLayer, nil
}

// addLayer returns base plus the layer b builds, with base's layer media type.
func addLayer(base v1.Image, b *layerBuilder, createdBy string) (v1.Image, error) {
	mt, err := layerMediaType(base)
	if err != nil {
		return nil, err
	}
	l, err := b.Layer(mt)
	if err != nil {
		return nil, err
	}
	return mutate.Append(base, mutate.Addendum{
		Layer:     l,
		MediaType: mt,
		History:   v1.History{Created: v1.Time{Time: Epoch}, CreatedBy: createdBy},
	})
}

// WithFile returns base plus one layer holding a regular file at path with
// the given content and permission bits (setuid etc. allowed, e.g. 0o4755).
func WithFile(base v1.Image, path string, content []byte, mode os.FileMode) (v1.Image, error) {
	return WithFiles(base, map[string]File{path: {Content: content, Mode: mode}})
}

// File is one file for WithFiles. Link, if set, makes it a symbolic link to
// Link instead of a regular file.
type File struct {
	Content []byte
	Mode    os.FileMode
	Link    string
}

// WithFiles returns base plus one layer holding the given files.
func WithFiles(base v1.Image, files map[string]File) (v1.Image, error) {
	b := newLayerBuilder()
	var names []string
	for p, f := range files {
		if f.Link != "" {
			b.Symlink(p, f.Link)
		} else {
			b.File(p, fileMode(f.Mode), f.Content)
		}
		names = append(names, p)
	}
	sort.Strings(names)
	return addLayer(base, b, "testenv: add "+strings.Join(names, " "))
}

func fileMode(m os.FileMode) int64 {
	r := int64(m.Perm())
	if m&os.ModeSetuid != 0 {
		r |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		r |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		r |= 0o1000
	}
	// Also accept raw octal bits (0o4755) passed as a FileMode.
	r |= int64(uint32(m) & 0o7000)
	return r
}

// WithConfig returns base with its config changed by edit.
func WithConfig(base v1.Image, edit func(*v1.Config)) (v1.Image, error) {
	cf, err := base.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	edit(&cf.Config)
	return mutate.ConfigFile(base, cf)
}

// ToOCI returns img with OCI media types (manifest, config and layers); the
// layer blobs are unchanged.
func ToOCI(img v1.Image) (v1.Image, error) {
	return convert(img, types.OCIManifestSchema1, types.OCIConfigJSON, types.OCILayer)
}

// ToDocker returns img with Docker schema 2 media types.
func ToDocker(img v1.Image) (v1.Image, error) {
	return convert(img, types.DockerManifestSchema2, types.DockerConfigJSON, types.DockerLayer)
}

func convert(img v1.Image, manifest, config, layer types.MediaType) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	history := cf.History
	cf.History = nil
	cf.RootFS.DiffIDs = nil
	out, err := mutate.ConfigFile(mutate.MediaType(empty.Image, manifest), cf)
	if err != nil {
		return nil, err
	}
	out = mutate.ConfigMediaType(out, config)
	var adds []mutate.Addendum
	for i, l := range layers {
		a := mutate.Addendum{Layer: l, MediaType: layer}
		if i < len(history) {
			a.History = history[i]
		}
		adds = append(adds, a)
	}
	return mutate.Append(out, adds...)
}

// DefaultCacheDir is where BuildBusybox's .deb and other build inputs are
// cached between runs: $HUSK_TESTENV_CACHE, else $XDG_CACHE_HOME/husk-testenv
// (~/.cache/husk-testenv).
func DefaultCacheDir() string {
	if d := os.Getenv("HUSK_TESTENV_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "husk-testenv")
	}
	return filepath.Join(os.TempDir(), "husk-testenv-cache")
}
