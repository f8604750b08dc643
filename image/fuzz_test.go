package image

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzUnpackLayer feeds arbitrary tar streams to the layer unpacker: it
// returns (an error or a layer), never panics, and writes nothing outside
// the layer's dir, whatever the entries' names, links and whiteouts say.
func FuzzUnpackLayer(f *testing.F) {
	for _, entries := range [][]tar.Header{
		{{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}, {Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5}},
		{{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "/bin/busybox"}, {Name: "bin/ash", Typeflag: tar.TypeLink, Linkname: "bin/sh"}},
		{{Name: "../escape", Typeflag: tar.TypeReg, Size: 5}, {Name: "a/.wh..wh..opq", Typeflag: tar.TypeReg}, {Name: "a/.wh.b", Typeflag: tar.TypeReg}},
		{{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "../../.."}, {Name: "l/x", Typeflag: tar.TypeReg, Size: 5}},
	} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range entries {
			_ = tw.WriteHeader(&h)
			if h.Size > 0 {
				_, _ = tw.Write([]byte("hello")[:h.Size])
			}
		}
		_ = tw.Close()
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// A few bytes of tar can declare gigabytes (a size, a sparse map
		// the reader fills with zeros): a real layer may, and the store
		// writes what it declares, but a fuzz input must stay small.
		if declared(data) > 1<<20 {
			return
		}
		root := t.TempDir()
		dir := filepath.Join(root, "layer")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		_, _ = unpackLayer(context.Background(), discard, bytes.NewReader(data), dir)
		ents, err := os.ReadDir(root)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 1 || ents[0].Name() != "layer" {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Fatalf("the unpack wrote outside the layer dir: %v", names)
		}
	})
}

// declared sums the sizes the tar stream's headers give its entries
// (sparse files their expanded size); a stream it cannot read counts as
// what was read of it.
func declared(data []byte) int64 {
	var n int64
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err != nil {
			return n
		}
		n += h.Size
		if n > 1<<40 || h.Size < 0 {
			return 1 << 40
		}
	}
}

// FuzzParseHostsFile feeds arbitrary hosts.toml content to the mirror
// parser: an error or endpoints, never a panic; every mirror has a scheme
// and a host, and the last endpoint (the server) has both or neither
// (neither: the registry's own, filled in by the caller).
func FuzzParseHostsFile(f *testing.F) {
	f.Add([]byte("server = \"https://registry.example\"\n\n[host.\"http://127.0.0.1:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true\n"))
	f.Add([]byte("[host.\"https://mirror\"]\n  capabilities = [\"pull\"]\n  ca = \"/etc/ca.pem\"\n  [host.\"https://mirror\".header]\n    x-a = \"b\"\n"))
	f.Add([]byte("server = \"\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		eps, err := parseHostsFile(t.TempDir(), data)
		if err != nil {
			return
		}
		for i, ep := range eps {
			ok := (ep.scheme == "https" || ep.scheme == "http") && ep.host != ""
			if i == len(eps)-1 && ep.scheme == "" && ep.host == "" {
				ok = true
			}
			if !ok {
				t.Fatalf("endpoint %d of %d without scheme or host from %q: %+v", i, len(eps), data, ep)
			}
		}
	})
}
