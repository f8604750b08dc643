package image

import (
	"fmt"
	"io/fs"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// FsInfo reports the disk used by images, for CRI ImageFsInfo: bytes
// allocated and inodes under Root/layers and Root/content (hard links
// counted once), and the directory holding the layers as the mountpoint,
// as containerd reports its snapshotter's root.
func (s *Store) FsInfo() (usedBytes, inodes uint64, mountpoint string, err error) {
	type inode struct{ dev, ino uint64 }
	seen := make(map[inode]bool)
	for _, root := range []string{s.layersDir, filepath.Dir(filepath.Dir(s.contentDir))} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				// Layers may be collected while we walk.
				if p != root {
					return nil
				}
				return err
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return nil
			}
			k := inode{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
			usedBytes += uint64(st.Blocks) * 512
			inodes++
			return nil
		})
		if err != nil {
			return 0, 0, "", fmt.Errorf("image fs usage of %s: %w", root, err)
		}
	}
	return usedBytes, inodes, s.layersDir, nil
}
