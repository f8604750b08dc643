package image

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func unpackEntries(t *testing.T, dir string, entries []entry) error {
	t.Helper()
	_, err := unpackLayer(context.Background(), discard, bytes.NewReader(tarBytes(t, entries)), dir)
	return err
}

func TestUnpackMaliciousEntries(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries func(outside string) []entry
		blame   string // entry the error must name
	}{
		{"dotdot", func(string) []entry { return []entry{{name: "../x", body: "x"}} }, "../x"},
		{"nested dotdot", func(string) []entry { return []entry{{name: "a/../../x", body: "x"}} }, "a/../../x"},
		{"absolute", func(o string) []entry { return []entry{{name: filepath.Join(o, "x"), body: "x"}} }, "/x"},
		{"symlink then write through", func(o string) []entry {
			return []entry{{name: "evil", typ: '2', link: o}, {name: "evil/x", body: "x"}}
		}, "evil/x"},
		{"symlink to root then write through", func(o string) []entry {
			return []entry{{name: "evil", typ: '2', link: "/"}, {name: "evil" + o + "/x", body: "x"}}
		}, "evil"},
		{"relative symlink escape", func(o string) []entry {
			return []entry{{name: "up", typ: '2', link: "../.."}, {name: "up/x", body: "x"}}
		}, "up/x"},
		// The unpacker remembers directories it has seen; one replaced
		// by a symlink later in the layer must not stay remembered.
		{"known dir replaced by symlink then write through", func(o string) []entry {
			return []entry{{name: "d/", typ: '5'}, {name: "d/a", body: "a"}, {name: "d", typ: '2', link: o}, {name: "d/x", body: "x"}}
		}, "d/x"},
		{"known dir whited out, symlink, write through", func(o string) []entry {
			return []entry{{name: "p/d/a", body: "a"}, {name: "p/.wh.d", body: ""}, {name: "p/d", typ: '2', link: o}, {name: "p/d/x", body: "x"}}
		}, "p/d/x"},
		{"hardlink absolute", func(string) []entry { return []entry{{name: "h", typ: '1', link: "/etc/passwd"}} }, "h"},
		{"hardlink dotdot", func(string) []entry { return []entry{{name: "h", typ: '1', link: "../../../../etc/passwd"}} }, "h"},
		{"hardlink through symlink", func(string) []entry {
			return []entry{{name: "etc", typ: '2', link: "/etc"}, {name: "h", typ: '1', link: "etc/passwd"}}
		}, "h"},
		{"whiteout dotdot", func(string) []entry { return []entry{{name: "d/.wh...", typ: '0', body: ""}} }, ".wh..."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outside := t.TempDir()
			layer := filepath.Join(t.TempDir(), "layer")
			if err := os.Mkdir(layer, 0o755); err != nil {
				t.Fatal(err)
			}
			err := unpackEntries(t, layer, tc.entries(outside))
			if err == nil {
				t.Fatal("unpack succeeded")
			}
			if !strings.Contains(err.Error(), tc.blame) {
				t.Errorf("error %q does not name entry %q", err, tc.blame)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Errorf("written outside the layer: %v", ents)
			}
			if ents, _ := os.ReadDir(filepath.Dir(layer)); len(ents) != 1 {
				t.Errorf("written next to the layer: %v", ents)
			}
		})
	}
}

func TestUnpackHardlinkKeepsTargetMode(t *testing.T) {
	dir := t.TempDir()
	err := unpackEntries(t, dir, []entry{
		{name: "bin/", typ: '5', mode: 0o755},
		{name: "bin/tool", body: "elf", mode: 0o4755},
		// The trap: a hard-link header with another mode must not chmod the
		// shared inode.
		{name: "bin/alias", typ: '1', link: "bin/tool", mode: 0o600},
	})
	if err != nil {
		t.Fatal(err)
	}
	fa, err := os.Stat(filepath.Join(dir, "bin/tool"))
	if err != nil {
		t.Fatal(err)
	}
	fb, err := os.Stat(filepath.Join(dir, "bin/alias"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(fa, fb) {
		t.Error("alias is not a hard link of tool")
	}
	if want := os.FileMode(0o755) | os.ModeSetuid; fa.Mode() != want {
		t.Errorf("tool mode = %v, want %v", fa.Mode(), want)
	}
}

func TestUnpackMetadata(t *testing.T) {
	dir := t.TempDir()
	// The unpacked ro/ is 0555: a non-root test cannot empty it for the
	// temp dir's removal until it is writable again.
	t.Cleanup(func() { os.Chmod(filepath.Join(dir, "ro"), 0o755) })
	dirTime := time.Unix(1_500_000_000, 0)
	fileTime := time.Unix(1_400_000_000, 0)
	err := unpackEntries(t, dir, []entry{
		{name: "./", typ: '5', mode: 0o755},
		{name: "ro/", typ: '5', mode: 0o555, mtime: dirTime},
		{name: "ro/f", body: "data", mode: 0o640, mtime: fileTime},
		{name: "ro/link", typ: '2', link: "/nonexistent/target", mtime: fileTime},
		{name: "x", body: "xa", pax: map[string]string{"SCHILY.xattr.user.husk": "v", "SCHILY.xattr.trusted.overlay.redirect": "/etc"}},
		{name: "fifo", typ: '6', mode: 0o600},
		{name: "deep/a/b/c", body: "implicit parents"},
	})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(dir, "ro"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o555 || !fi.ModTime().Equal(dirTime) {
		t.Errorf("ro: mode %v mtime %v, want 0555 %v (set after children)", fi.Mode(), fi.ModTime(), dirTime)
	}
	fi, err = os.Lstat(filepath.Join(dir, "ro/f"))
	if err != nil || fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(fileTime) {
		t.Errorf("ro/f: %v %v %v", fi.Mode(), fi.ModTime(), err)
	}
	if l, err := os.Readlink(filepath.Join(dir, "ro/link")); err != nil || l != "/nonexistent/target" {
		t.Errorf("symlink = %q, %v", l, err)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "ro/link")); err != nil || !fi.ModTime().Equal(fileTime) {
		t.Errorf("symlink mtime %v, %v", fi.ModTime(), err)
	}
	buf := make([]byte, 16)
	if n, err := unix.Getxattr(filepath.Join(dir, "x"), "user.husk", buf); err != nil || string(buf[:n]) != "v" {
		t.Errorf("xattr user.husk = %q, %v", buf[:n], err)
	}
	if os.Geteuid() == 0 {
		if _, err := unix.Getxattr(filepath.Join(dir, "x"), "trusted.overlay.redirect", buf); err == nil {
			t.Error("trusted.overlay.* xattr from the layer was applied")
		}
	}
	if fi, err := os.Lstat(filepath.Join(dir, "fifo")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("fifo: %v %v", fi.Mode(), err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "deep/a/b/c")); err != nil || string(b) != "implicit parents" {
		t.Errorf("deep file: %q %v", b, err)
	}
}

func TestUnpackOwnershipAndDevices(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for lchown and mknod")
	}
	dir := t.TempDir()
	err := unpackEntries(t, dir, []entry{
		{name: "f", body: "x", uid: 1234, gid: 5678, mode: 0o2755},
		{name: "l", typ: '2', link: "f", uid: 42, gid: 43},
		{name: "null", typ: '3', mode: 0o666},
	})
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "f"), &st); err != nil || st.Uid != 1234 || st.Gid != 5678 || st.Mode&0o7777 != 0o2755 {
		t.Errorf("f: uid %d gid %d mode %o, %v", st.Uid, st.Gid, st.Mode&0o7777, err)
	}
	if err := unix.Lstat(filepath.Join(dir, "l"), &st); err != nil || st.Uid != 42 || st.Gid != 43 {
		t.Errorf("symlink owner %d:%d, %v", st.Uid, st.Gid, err)
	}
	if err := unix.Lstat(filepath.Join(dir, "null"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
		t.Errorf("null: mode %o, %v", st.Mode, err)
	}
}

func TestUnpackWhiteouts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for mknod and trusted.* xattrs")
	}
	dir := t.TempDir()
	err := unpackEntries(t, dir, []entry{
		{name: "opq/", typ: '5', mode: 0o755},
		{name: "opq/.wh..wh..opq"},
		{name: "opq/keep", body: "k"},
		{name: "etc/.wh.gone"},
		{name: ".wh..wh.plnk"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "etc/gone"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("whiteout etc/gone: mode %o rdev %d, %v", st.Mode, st.Rdev, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "etc/.wh.gone")); !os.IsNotExist(err) {
		t.Errorf(".wh. file itself was written: %v", err)
	}
	buf := make([]byte, 4)
	if n, err := unix.Getxattr(filepath.Join(dir, "opq"), opaqueXattr, buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("opaque xattr = %q, %v", buf[:n], err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "opq/.wh..wh..opq")); !os.IsNotExist(err) {
		t.Errorf("opaque marker written as a file: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, ".wh..wh.plnk")); !os.IsNotExist(err) {
		t.Errorf("aufs metadata written: %v", err)
	}
}

func TestUnpackVerifiedRejectsWrongDiffID(t *testing.T) {
	data := tarBytes(t, []entry{{name: "f", body: "x"}})
	d := digestOf(data)
	other := digestOf([]byte("other"))
	if _, err := unpackVerified(context.Background(), discard, bytes.NewReader(data), t.TempDir(), d, other); err == nil || !strings.Contains(err.Error(), "diff id") {
		t.Errorf("wrong diff id: err = %v", err)
	}
	if _, err := unpackVerified(context.Background(), discard, bytes.NewReader(data), t.TempDir(), other, d); err == nil || !strings.Contains(err.Error(), "digest") {
		t.Errorf("wrong blob digest: err = %v", err)
	}
	if _, err := unpackVerified(context.Background(), discard, bytes.NewReader(data), t.TempDir(), d, d); err != nil {
		t.Errorf("correct digests: %v", err)
	}
}

// discard is the logger of unpacks a test runs without a store.
var discard = slog.New(slog.DiscardHandler)

// BenchmarkUnpackSmallFiles unpacks the shape of the pull benchmark's
// small-file layer (4000 files of 4 KiB in 40 directories) from memory,
// so that the figure is the unpacker's own cost per file. Where the
// directory is on a disk, the filesystem's file creation dominates; run
// it with TMPDIR on a tmpfs to see the unpacker alone.
func BenchmarkUnpackSmallFiles(b *testing.B) {
	body := strings.Repeat("husk ", 4096/5+1)[:4096]
	var entries []entry
	for d := 0; d < 40; d++ {
		entries = append(entries, entry{name: fmt.Sprintf("small/%02d/", d), typ: '5', mode: 0o755})
	}
	for j := 0; j < 4000; j++ {
		entries = append(entries, entry{name: fmt.Sprintf("small/%02d/file-%d.txt", j%40, j), body: body})
	}
	layer := tarBytes(b, entries)
	b.SetBytes(4000 * 4096)
	for b.Loop() {
		b.StopTimer()
		dir, err := os.MkdirTemp(b.TempDir(), "layer")
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := unpackLayer(context.Background(), discard, bytes.NewReader(layer), dir); err != nil {
			b.Fatal(err)
		}
	}
}
