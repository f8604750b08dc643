package oci

import (
	"os"
	"path/filepath"
	"testing"
)

// A create killed after libcontainer made the container's dir and before
// it wrote state.json leaves a dir that Load calls nonexistent; Delete
// removes it, and deleting an id with no dir at all still succeeds.
func TestDeleteStatelessDir(t *testing.T) {
	root := t.TempDir()
	id := "0123456789abcdef"
	if err := os.MkdirAll(filepath.Join(root, id), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := Delete(root, id); err != nil {
		t.Fatalf("Delete of a dir without state: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, id)); !os.IsNotExist(err) {
		t.Fatalf("the dir is still there: %v", err)
	}
	if err := Delete(root, id); err != nil {
		t.Fatalf("Delete of an id never made: %v", err)
	}
}
