package layout

import "testing"

// The paths are what DESIGN.md's "Where state lives" says and what nodes
// running an earlier husk have on disk: changing one strands their state.
func TestPaths(t *testing.T) {
	l := Layout{Root: "/var/lib/husk", State: "/run/husk"}
	id := "0123456789abcdef0123"
	for _, c := range [][2]string{
		{l.PodDir(id), "/var/lib/husk/pods/" + id},
		{l.ContainerDir(id, "c1"), "/var/lib/husk/pods/" + id + "/containers/c1"},
		{l.CNICacheDir(), "/var/lib/husk/cni/cache"},
		{l.IPAMDir(), "/var/lib/husk/cni/networks"},
		{l.ShimSocket(id), "/run/husk/s/0123456789ab.sock"},
		{l.NetnsDir(), "/run/husk/netns"},
		{l.OCIDir(), "/run/husk/oci"},
		{l.BootIDFile(), "/run/husk/boot_id"},
	} {
		if c[0] != c[1] {
			t.Errorf("got %s, want %s", c[0], c[1])
		}
	}
}
