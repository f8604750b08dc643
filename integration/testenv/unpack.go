package testenv

import (
	"fmt"
	"io"
	"os/exec"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// Unpack writes img's flattened file system into dir with the host's GNU
// tar (numeric owners, modes, hard links kept). It is meant for tests that
// chroot into an image; dir must exist.
func Unpack(img v1.Image, dir string) error {
	rc := mutate.Extract(img)
	defer rc.Close()
	cmd := exec.Command("tar", "-x", "-p", "--numeric-owner", "-C", dir)
	cmd.Stdin = rc
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("tar -x: %v: %s", err, out)
	}
	_, _ = io.Copy(io.Discard, rc)
	return nil
}
