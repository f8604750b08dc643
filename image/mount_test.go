package image

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestMakeUpperOwner checks that a container's "/" keeps the owner and
// mode of the image's root, shifted into the user namespace's range when
// the rootfs is idmapped.
func TestMakeUpperOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	dir := t.TempDir()
	top := filepath.Join(dir, "top")
	if err := os.Mkdir(top, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(top, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		idmap    *IDMap
		uid, gid uint32
	}{
		{nil, 1234, 5678},
		{&IDMap{UID: 100000, GID: 200000}, 101234, 205678},
	} {
		upper := filepath.Join(dir, "upper")
		if err := makeUpper(upper, top, tc.idmap); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(upper)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != tc.uid || st.Gid != tc.gid || fi.Mode().Perm() != 0o750 {
			t.Errorf("idmap %+v: upper is %d:%d %v, want %d:%d -rwxr-x---", tc.idmap, st.Uid, st.Gid, fi.Mode().Perm(), tc.uid, tc.gid)
		}
		os.Remove(upper)
	}
}
