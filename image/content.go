package image

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/husk-runtime/husk/atomicfile"
)

// blobPath is where the blob with digest d lives. Only sha256 is accepted,
// which also keeps d.Hex from carrying a path separator.
func (s *Store) blobPath(d v1.Hash) (string, error) {
	if d.Algorithm != "sha256" || !isHex(d.Hex) || len(d.Hex) != 64 {
		return "", fmt.Errorf("unsupported digest %q", d.String())
	}
	return filepath.Join(s.contentDir, d.Hex), nil
}

// putBlob stores data under its digest after checking that it has that
// digest. An existing blob is left alone: same digest, same bytes.
func (s *Store) putBlob(d v1.Hash, data []byte) error {
	p, err := s.blobPath(d)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != d.String() {
		return fmt.Errorf("blob %s: content has digest %s", d, got)
	}
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	return atomicfile.Write(p, data, 0o644)
}

// readBlob returns a stored blob, verified against its digest.
func (s *Store) readBlob(d v1.Hash) ([]byte, error) {
	p, err := s.blobPath(d)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != d.Hex {
		return nil, fmt.Errorf("blob %s: stored content is corrupt", d)
	}
	return data, nil
}

func (s *Store) removeBlob(d v1.Hash) error {
	p, err := s.blobPath(d)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove blob %s: %w", d, err)
	}
	return nil
}

func (s *Store) cleanContentTemps() error {
	for _, d := range []string{s.contentDir, s.imagesDir, s.layersDir} {
		if err := atomicfile.RemoveTemps(d); err != nil {
			return err
		}
	}
	return nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
