package network

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/moby/sys/mountinfo"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

func randHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// mountsUnder lists the mount points at or below dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Mountpoint)
	}
	return out
}

func TestCreateRemoveNetns(t *testing.T) {
	requireRoot(t)
	netnsDir := filepath.Join(t.TempDir(), "netns")
	m, err := New(Config{NetnsDir: netnsDir})
	if err != nil {
		t.Fatal(err)
	}
	podID := "pod-" + randHex(t, 6)
	path, err := m.CreateNetns(podID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveNetns(path) })
	if path != filepath.Join(netnsDir, podID) {
		t.Errorf("path = %s, want %s", path, filepath.Join(netnsDir, podID))
	}
	if got := mountsUnder(t, netnsDir); len(got) != 1 || got[0] != path {
		t.Fatalf("mounts under %s = %v, want just %s", netnsDir, got, path)
	}
	if !netnsUsable(path) {
		t.Fatal("pinned path is not a netns")
	}

	// It is a different netns from ours, and lo is up in it.
	var hostIno, podIno uint64
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	hostIno = st.Ino
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	podIno = st.Ino
	if hostIno == podIno {
		t.Fatal("pinned netns is the test's own netns")
	}
	err = ns.WithNetNSPath(path, func(ns.NetNS) error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if lo.Attrs().Flags&net.FlagUp == 0 {
			return errors.New("lo is down")
		}
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		if len(links) != 1 {
			return errors.New("new netns has more links than lo")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("inside pinned netns: %v", err)
	}

	// A second netns with the same id is refused and leaves the first alone.
	if _, err := m.CreateNetns(podID); err == nil {
		t.Error("CreateNetns with an existing id succeeded")
	}
	if !netnsUsable(path) {
		t.Error("failed duplicate CreateNetns broke the existing netns")
	}

	// Every thread of this process is back in the host netns: a thread
	// left in the pod netns (e.g. a wedged main thread) would keep it and
	// its veth alive after RemoveNetns.
	for range 20 {
		p, err := m.CreateNetns("pod-" + randHex(t, 6))
		if err != nil {
			t.Fatal(err)
		}
		if err := RemoveNetns(p); err != nil {
			t.Fatal(err)
		}
	}
	tasks, _ := filepath.Glob("/proc/self/task/*/ns/net")
	for _, task := range tasks {
		var ts unix.Stat_t
		if err := unix.Stat(task, &ts); err == nil && ts.Ino != hostIno {
			t.Errorf("%s is in netns %d, not the host's %d", task, ts.Ino, hostIno)
		}
	}

	if err := RemoveNetns(path); err != nil {
		t.Fatal(err)
	}
	if got := mountsUnder(t, netnsDir); len(got) != 0 {
		t.Errorf("mounts left under %s: %v", netnsDir, got)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("netns file still there: %v", err)
	}
	if err := RemoveNetns(path); err != nil {
		t.Errorf("second RemoveNetns: %v", err)
	}
	// A leftover plain file (as after a reboot) is removed too.
	writeFile(t, path, "")
	if err := RemoveNetns(path); err != nil {
		t.Errorf("RemoveNetns on a plain file: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("plain netns file still there: %v", err)
	}
}

func TestCreateNetnsFailureLeavesNothing(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	m, err := New(Config{NetnsDir: filepath.Join(root, "netns")})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "a/b", ".."} {
		if _, err := m.CreateNetns(id); err == nil {
			t.Errorf("CreateNetns(%q) succeeded", id)
		}
	}
	// NetnsDir cannot be created (a file is in the way): error, nothing made.
	writeFile(t, filepath.Join(root, "file"), "")
	m2, err := New(Config{NetnsDir: filepath.Join(root, "file", "netns")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m2.CreateNetns("pod"); err == nil || !strings.Contains(err.Error(), "netns dir") {
		t.Errorf("CreateNetns under a file: err = %v", err)
	}
	if got := mountsUnder(t, root); len(got) != 0 {
		t.Errorf("mounts left under %s: %v", root, got)
	}
}
