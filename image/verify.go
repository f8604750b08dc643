package image

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"log/slog"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// unpackVerified unpacks a layer straight from its distributed stream:
// no temp copy of the blob. The compressed bytes are hashed against digest
// and the decompressed ones against diffID; both streams are read to their
// end, so trailing garbage cannot hide from either check. A mismatch fails
// the unpack, and the caller discards the directory.
func unpackVerified(ctx context.Context, log *slog.Logger, blob io.Reader, dir string, digest, diffID v1.Hash) (int64, error) {
	ch := sha256.New()
	// The decompressor reads br a byte at a time, and br refills from the
	// blob, through the hashes, the kept copy's write and the socket, a
	// buffer at a time: bufio's 4 KiB default made that 52,000 refills,
	// and as many writes of the kept blob, for a 212 MB image.
	br := bufio.NewReaderSize(io.TeeReader(blob, ch), blobReadSize)
	plain, _, done, err := decompress(br)
	if err != nil {
		return 0, err
	}
	defer done()

	uh := sha256.New()
	size, err := unpackLayer(ctx, log, io.TeeReader(plain, uh), dir)
	if err != nil {
		return 0, err
	}
	// tar stops at its end-of-archive marker; hash the padding after it too.
	if _, err := io.Copy(io.Discard, io.TeeReader(plain, uh)); err != nil {
		return 0, fmt.Errorf("decompress: %w", err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return 0, fmt.Errorf("read blob: %w", err)
	}
	if got := hashString(ch); got != digest.String() {
		return 0, fmt.Errorf("blob digest mismatch: got %s, want %s", got, digest)
	}
	if got := hashString(uh); got != diffID.String() {
		return 0, fmt.Errorf("diff id mismatch: got %s, want %s", got, diffID)
	}
	return size, nil
}

// blobReadSize is how much of a blob one refill reads.
const blobReadSize = 1 << 20

func hashString(h hash.Hash) string {
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func digestOf(data []byte) v1.Hash {
	sum := sha256.Sum256(data)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}
