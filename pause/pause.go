// Package pause carries husk's built-in infra process and the image it runs
// from, so that a node needs no registry to start a pod.
package pause

import (
	"archive/tar"
	"bytes"
	_ "embed"
	"fmt"
	"time"
)

// binary is pause.c built static (see the Makefile); go:embed fails the build
// when it is missing, so a husk without its pause cannot be produced.
//
//go:embed pause.bin
var binary []byte

// Binary returns the static pause program.
func Binary() []byte { return binary }

// epoch fixes every timestamp in the layer, so the same husk build always
// yields the same layer and image id.
var epoch = time.Unix(0, 0).UTC()

// Layer returns an uncompressed tar holding the infra rootfs: /pause and the
// empty mount points and files libcontainer and husk bind over. The rootfs is
// mounted read-only, so every mount point must exist in the layer itself.
func Layer() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := []string{"dev/", "proc/", "sys/", "etc/", "tmp/"}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}); err != nil {
			return nil, fmt.Errorf("pause layer: dir %s: %w", d, err)
		}
	}
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"pause", 0o755, binary},
		{"etc/resolv.conf", 0o644, nil},
		{"etc/hostname", 0o644, nil},
		{"etc/hosts", 0o644, nil},
		{"etc/passwd", 0o644, []byte("root:x:0:0:root:/:/pause\nnobody:x:65534:65534:nobody:/:/pause\n")},
		{"etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")},
	}
	for _, f := range files {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: epoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("pause layer: %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("pause layer: %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("pause layer: %w", err)
	}
	return buf.Bytes(), nil
}
