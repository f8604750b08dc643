package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
	"unsafe"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
	opaqueXattr    = "trusted.overlay.opaque"
	paxXattrPrefix = "SCHILY.xattr."
)

// unpacker extracts one layer tar into root, a fresh directory that only
// this process writes to. Every path is checked so that no entry can create
// or change anything outside root, whatever the layer's author intended.
type unpacker struct {
	log    *slog.Logger
	root   string
	asRoot bool // ownership and device nodes need root; tests may run without
	dirs   []pendingDir
	size   int64
	// realDirs holds the entry directories (slash-separated, relative)
	// already known to be real directories reached through no symlink.
	// Within one unpack only this unpacker changes the tree, and the one
	// way it can turn a known directory, or one of its parents, into
	// something else is removing it first (an entry that replaces it, a
	// whiteout): forget clears the set at every removal. A layer of 4000
	// small files then costs no lookups per file for its parents (three
	// lstat calls each before).
	realDirs map[string]struct{}
}

// forget drops what realDirs knows; called before any removal.
func (u *unpacker) forget() { clear(u.realDirs) }

// pendingDir holds the metadata applied to a directory after its children
// exist: creating a child changes the directory's mtime, and a read-only
// mode would stop an unprivileged unpacker from creating children at all.
type pendingDir struct {
	path  string
	depth int
	hdr   *tar.Header
}

// unpackLayer extracts the uncompressed tar stream r into dir and returns the
// sum of the regular files' sizes.
func unpackLayer(ctx context.Context, log *slog.Logger, r io.Reader, dir string) (int64, error) {
	u := &unpacker{log: log, root: dir, asRoot: os.Geteuid() == 0, realDirs: make(map[string]struct{})}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("read layer tar: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if err := u.entry(hdr, tr); err != nil {
			return 0, fmt.Errorf("layer entry %q: %w", hdr.Name, err)
		}
	}
	if err := u.finishDirs(); err != nil {
		return 0, err
	}
	return u.size, nil
}

// cleanEntryName returns the slash-separated, cleaned name of a tar entry
// relative to the layer root ("." for the root itself). Names that are
// absolute or contain ".." are refused rather than rewritten: no image
// builder produces them, so one that has them is broken or hostile.
func cleanEntryName(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty name")
	}
	if strings.HasPrefix(name, "/") {
		return "", errors.New("absolute path")
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", errors.New("path contains \"..\"")
		}
	}
	return path.Clean(name), nil
}

// dirPath returns the host path of directory rel inside the layer, creating
// missing directories. It refuses a path that passes through a symlink: the
// layer is unpacked alone into an empty directory, so a well-formed layer
// never writes through its own symlinks, and following one (to "/", say) is
// exactly how a hostile layer would write outside.
func (u *unpacker) dirPath(rel string) (string, error) {
	if rel == "." {
		return u.root, nil
	}
	lexical := filepath.Join(u.root, filepath.FromSlash(rel))
	if _, ok := u.realDirs[rel]; ok {
		return lexical, nil
	}
	resolved, err := securejoin.SecureJoin(u.root, rel)
	if err != nil {
		return "", fmt.Errorf("resolve %q: %w", rel, err)
	}
	if resolved != lexical {
		return "", fmt.Errorf("parent %q goes through a symlink", rel)
	}
	fi, err := os.Lstat(lexical)
	switch {
	case err == nil && fi.IsDir():
		u.realDirs[rel] = struct{}{}
		return lexical, nil
	case err == nil:
		return "", fmt.Errorf("parent %q is not a directory", rel)
	case errors.Is(err, os.ErrNotExist):
		// SecureJoin checked the existing prefix has no symlinks, and
		// nothing else writes here, so MkdirAll only creates real dirs.
		if err := os.MkdirAll(lexical, 0o755); err != nil {
			return "", err
		}
		u.realDirs[rel] = struct{}{}
		return lexical, nil
	default:
		return "", err
	}
}

func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	name, err := cleanEntryName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return errors.New("layer root is not a directory")
		}
		if err := u.chown(u.root, hdr); err != nil {
			return err
		}
		if err := u.setXattrs(u.root, hdr); err != nil {
			return err
		}
		u.dirs = append(u.dirs, pendingDir{path: u.root, depth: 0, hdr: hdr})
		return nil
	}
	parentRel, base := path.Split(name)
	if parentRel == "" {
		parentRel = "."
	}
	parent, err := u.dirPath(path.Clean(parentRel))
	if err != nil {
		return err
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return u.whiteout(parent, base)
	}
	target := filepath.Join(parent, base)

	if hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeGNUSparse { // tar.Reader turns the legacy TypeRegA into TypeReg
		// Most entries are new files: create first, and look at what is
		// there only when something is.
		err := u.regular(target, hdr, r)
		if !errors.Is(err, unix.EEXIST) {
			return err
		}
	}
	if fi, err := os.Lstat(target); err == nil {
		// A later entry replaces an earlier one, except that a directory
		// entry only updates an existing directory's metadata.
		if !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
			u.forget()
			if err := os.RemoveAll(target); err != nil {
				return err
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if err := u.chown(target, hdr); err != nil {
			return err
		}
		if err := u.setXattrs(target, hdr); err != nil {
			return err
		}
		u.dirs = append(u.dirs, pendingDir{path: target, depth: strings.Count(name, "/") + 1, hdr: hdr})
		return nil
	case tar.TypeReg, tar.TypeGNUSparse:
		return u.regular(target, hdr, r)
	case tar.TypeSymlink:
		// The link's target is interpreted inside the container, where any
		// value is harmless; the unpacker itself never follows it.
		if err := os.Symlink(hdr.Linkname, target); err != nil {
			return err
		}
		if err := u.chown(target, hdr); err != nil {
			return err
		}
		if err := u.setXattrs(target, hdr); err != nil {
			return err
		}
		return setTimes(target, hdr)
	case tar.TypeLink:
		return u.hardlink(target, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(hdr.Mode & 0o7777)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode |= unix.S_IFCHR
		case tar.TypeBlock:
			mode |= unix.S_IFBLK
		default:
			mode |= unix.S_IFIFO
		}
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknod(target, mode, int(dev)); err != nil {
			return fmt.Errorf("mknod: %w", err)
		}
		if err := u.chown(target, hdr); err != nil {
			return err
		}
		// mknod applied the umask; the header's mode is the truth.
		if err := os.Chmod(target, hdr.FileInfo().Mode()); err != nil {
			return err
		}
		if err := u.setXattrs(target, hdr); err != nil {
			return err
		}
		return setTimes(target, hdr)
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
}

// regular creates target, which must not exist (EEXIST is returned
// untouched for entry to replace what is there), from r and hdr. It works
// on the raw descriptor: an *os.File would cost an fstat at open (to tell
// the poller about it) for a file only ever written here, and fd-relative
// calls spare the path walks of chown, chmod and utimes by name.
func (u *unpacker) regular(target string, hdr *tar.Header, r io.Reader) error {
	fd, err := unix.Open(target, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &os.PathError{Op: "open", Path: target, Err: err}
	}
	if err := u.fillFile(fd, hdr, r); err != nil {
		unix.Close(fd)
		return err
	}
	if err := unix.Close(fd); err != nil {
		return &os.PathError{Op: "close", Path: target, Err: err}
	}
	return nil
}

func (u *unpacker) fillFile(fd int, hdr *tar.Header, r io.Reader) error {
	n, err := copyFile(fd, r)
	if err != nil {
		return err
	}
	u.size += n
	if u.asRoot {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	// Chmod after chown: chown clears setuid and setgid bits.
	if err := unix.Fchmod(fd, uint32(unixMode(hdr.FileInfo().Mode()))); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	for k, v := range u.entryXattrs(hdr) {
		if err := unix.Fsetxattr(fd, k, []byte(v), 0); err != nil {
			return fmt.Errorf("set xattr %s: %w", k, err)
		}
	}
	// Times last: nothing after this writes to the file.
	return futimens(fd, hdr)
}

// unixMode turns a Go file mode's permission and special bits into the
// kernel's.
func unixMode(m os.FileMode) uint32 {
	mode := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		mode |= unix.S_ISUID
	}
	if m&os.ModeSetgid != 0 {
		mode |= unix.S_ISGID
	}
	if m&os.ModeSticky != 0 {
		mode |= unix.S_ISVTX
	}
	return mode
}

// hardlink links target to an earlier entry of the same layer. The link
// shares the earlier entry's inode, so none of this header's metadata
// (mode, owner, times) is applied: doing so would silently change the
// original file, e.g. strip the setuid bit of a binary linked elsewhere.
func (u *unpacker) hardlink(target string, hdr *tar.Header) error {
	rel, err := cleanEntryName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	if rel == "." {
		return fmt.Errorf("hard link target %q is the layer root", hdr.Linkname)
	}
	lexical := filepath.Join(u.root, filepath.FromSlash(rel))
	resolved, err := securejoin.SecureJoin(u.root, rel)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	if resolved != lexical {
		return fmt.Errorf("hard link target %q goes through a symlink", hdr.Linkname)
	}
	fi, err := os.Lstat(lexical)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("hard link target %q is a directory", hdr.Linkname)
	}
	// linkat without AT_SYMLINK_FOLLOW: a link to a symlink links the
	// symlink itself, never what it points to.
	return os.Link(lexical, target)
}

// whiteout turns an AUFS-style whiteout entry into overlayfs's form.
func (u *unpacker) whiteout(parent, base string) error {
	switch {
	case base == whiteoutOpaque:
		if err := unix.Setxattr(parent, opaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("mark %s opaque: %w", parent, err)
		}
		return nil
	case strings.HasPrefix(base, whiteoutMeta):
		// Other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs) has no meaning
		// for overlayfs.
		u.log.Debug("skipping aufs metadata entry", "entry", base)
		return nil
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("invalid whiteout %q", base)
	}
	target := filepath.Join(parent, name)
	u.forget()
	if err := os.RemoveAll(target); err != nil {
		return err
	}
	if err := unix.Mknod(target, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("whiteout %s: %w", name, err)
	}
	return nil
}

func (u *unpacker) chown(p string, hdr *tar.Header) error {
	if !u.asRoot {
		return nil
	}
	if err := os.Lchown(p, hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	return nil
}

func (u *unpacker) setXattrs(p string, hdr *tar.Header) error {
	for k, v := range u.entryXattrs(hdr) {
		if err := unix.Lsetxattr(p, k, []byte(v), 0); err != nil {
			return fmt.Errorf("set xattr %s: %w", k, err)
		}
	}
	return nil
}

// entryXattrs returns the PAX xattr records of hdr, without overlayfs's own
// trusted.overlay.* attributes: a layer that carries them could redirect
// lookups in the mounted overlay to other layers' files.
func (u *unpacker) entryXattrs(hdr *tar.Header) map[string]string {
	var out map[string]string
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, paxXattrPrefix)
		if !ok {
			continue
		}
		if strings.HasPrefix(name, "trusted.overlay.") {
			u.log.Warn("ignoring overlay xattr in layer", "entry", hdr.Name, "xattr", name)
			continue
		}
		if out == nil {
			out = make(map[string]string)
		}
		out[name] = v
	}
	return out
}

// finishDirs applies directory modes and times once all children exist,
// deepest first.
func (u *unpacker) finishDirs() error {
	sort.SliceStable(u.dirs, func(i, j int) bool { return u.dirs[i].depth > u.dirs[j].depth })
	for _, d := range u.dirs {
		if err := os.Chmod(d.path, d.hdr.FileInfo().Mode()); err != nil {
			return fmt.Errorf("layer entry %q: %w", d.hdr.Name, err)
		}
		if err := setTimes(d.path, d.hdr); err != nil {
			return fmt.Errorf("layer entry %q: %w", d.hdr.Name, err)
		}
	}
	return nil
}

func setTimes(p string, hdr *tar.Header) error {
	ts := entryTimes(hdr)
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// futimens sets hdr's times on an open file: utimensat(2) with a NULL
// path works on the descriptor itself (glibc's futimens), which x/sys
// does not wrap (its UtimesNanoAt takes a path, its Futimes goes through
// /proc/self/fd and microseconds).
func futimens(fd int, hdr *tar.Header) error {
	ts := entryTimes(hdr)
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if errno != 0 {
		return fmt.Errorf("set times: %w", errno)
	}
	return nil
}

// entryTimes returns hdr's access and modification times, the access
// time defaulting to the modification time.
func entryTimes(hdr *tar.Header) [2]unix.Timespec {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	return [2]unix.Timespec{toTimespec(atime), toTimespec(hdr.ModTime)}
}

func toTimespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	return unix.NsecToTimespec(t.UnixNano())
}

// copyBufs are copyFile's buffers: 1 MiB, where io.Copy's 32 kB cost a
// read and a write syscall per 32 kB of a layer.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// copyFile writes r's bytes to f. Nothing here waits for the disk, or
// starts its writeback: the layer reaches the disk with the store's flush
// (flush.go), mostly by the kernel's own writeback before it.
func copyFile(fd int, r io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	return io.CopyBuffer(fdWriter(fd), r, *bp)
}

// fdWriter writes to a blocking file descriptor, all of p or an error.
type fdWriter int

func (w fdWriter) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Write(int(w), p[done:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, fmt.Errorf("write: %w", err)
		}
		if n == 0 {
			return done, io.ErrShortWrite
		}
		done += n
	}
	return done, nil
}
