package image

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/klauspost/compress/zstd"
)

// fuzzInflateLimit bounds what one fuzz input may decompress to: a few
// bytes of gzip or zstd can stand for gigabytes, which a real layer may
// be and the store writes, but a fuzz input must stay small.
const fuzzInflateLimit = 1 << 20

// inflated is data decompressed as the store would (gzip or zstd by their
// magic, else as is); ok is false when it is more than limit bytes or does
// not decompress.
func inflated(data []byte, limit int64) ([]byte, bool) {
	r, _, done, err := decompress(bufio.NewReader(bytes.NewReader(data)))
	if err != nil {
		return nil, false
	}
	defer done()
	out, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil || int64(len(out)) > limit {
		return nil, false
	}
	return out, true
}

func gzipped(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstded(t testing.TB, b []byte) []byte {
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	return zw.EncodeAll(b, nil)
}

func sha256Of(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// FuzzUnpackCompressed feeds arbitrary layer blobs (gzip, zstd or plain
// tar) to the verifying unpacker a pull uses: an error or a layer, never a
// panic, nothing written outside the layer's dir, and success only when
// the uncompressed bytes hash to the diff id.
func FuzzUnpackCompressed(f *testing.F) {
	layer := tarBytes(f, []entry{{name: "etc/", typ: '5', mode: 0o755}, {name: "etc/hostname", body: "husk"}, {name: "bin/sh", typ: '2', link: "busybox"}})
	f.Add(layer)
	f.Add(gzipped(f, layer))
	f.Add(zstded(f, layer))
	f.Add(append(gzipped(f, layer), gzipped(f, layer)...)) // two gzip members, as eStargz writes
	f.Fuzz(func(t *testing.T, data []byte) {
		plain, ok := inflated(data, fuzzInflateLimit)
		if !ok || declared(plain) > fuzzInflateLimit {
			return
		}
		root := t.TempDir()
		dir := filepath.Join(root, "layer")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		_, err := unpackVerified(context.Background(), discard, bytes.NewReader(data), dir, sha256Of(data), sha256Of(plain))
		ents, rerr := os.ReadDir(root)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if len(ents) != 1 || ents[0].Name() != "layer" {
			t.Fatalf("the unpack wrote outside the layer dir: %v", ents)
		}
		// A wrong diff id is always refused.
		if err == nil {
			other := t.TempDir()
			if _, err := unpackVerified(context.Background(), discard, bytes.NewReader(data), other, sha256Of(data), sha256Of(append(plain, 0))); err == nil {
				t.Fatal("a layer whose diff id does not match was accepted")
			}
		}
	})
}

// FuzzImport feeds arbitrary archives to Import (OCI layouts and docker
// save tarballs, plain or compressed): images, or an error that leaves
// the store as it was (no record, blob, layer or hold), never a panic.
func FuzzImport(f *testing.F) {
	img := imageOf(f, layerOf(f, []entry{{name: "app", body: "one"}}))
	oci := ociArchive(f, func(p layout.Path) { appendImage(f, p, img, named("example.com/app:1")) })
	f.Add(oci)
	f.Add(gzipped(f, oci))
	f.Add(zstded(f, dockerArchive(f, map[string]v1.Image{"example.com/app:2": img})))
	f.Fuzz(func(t *testing.T, data []byte) {
		if plain, ok := inflated(data, fuzzInflateLimit); !ok || declared(plain) > fuzzInflateLimit {
			return
		}
		s := newStore(t, Config{})
		imgs, err := s.Import(context.Background(), bytes.NewReader(data))
		if err != nil {
			assertStoreEmpty(t, s)
			return
		}
		if len(imgs) == 0 || len(s.List()) != len(imgs) {
			t.Fatalf("imported %d images, the store lists %d", len(imgs), len(s.List()))
		}
	})
}

// FuzzAuthFile feeds arbitrary registry auth files (docker's and podman's
// auth.json) and lookups to the reader: credentials, nothing, or an
// error, never a panic and never an empty credential.
func FuzzAuthFile(f *testing.F) {
	f.Add([]byte(`{"auths":{"127.0.0.1:5000":{"auth":"dXNlcjpwYXNz"}}}`), "app", "127.0.0.1:5000")
	f.Add([]byte(`{"auths":{"https://index.docker.io/v1/":{"username":"u","password":"p"},"docker.io/library":{"identitytoken":"t"}}}`), "library/busybox", "registry-1.docker.io")
	f.Add([]byte(`{"auths":{"quay.io/org/app":{"registrytoken":"r"},"quay.io":{}}}`), "org/other", "quay.io")
	f.Fuzz(func(t *testing.T, data []byte, repo, host string) {
		path := filepath.Join(t.TempDir(), "auth.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s := &Store{authFile: path}
		a, err := s.fileAuth(repo, host)
		if err == nil && a != nil && *a == (Auth{}) {
			t.Fatalf("empty credentials for %q on %q from %q", repo, host, data)
		}
	})
}
