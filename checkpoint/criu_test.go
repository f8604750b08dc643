package checkpoint

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/husk-runtime/husk/errdefs"
)

// fakeCRIU writes a criu stand-in (the package boundary is the binary)
// that prints out and exits with code.
func fakeCRIU(t *testing.T, out string, code int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "criu")
	script := "#!/bin/sh\n[ \"$1\" = check ] || exit 99\ncat <<'EOF'\n" + out + "EOF\nexit " + string(rune('0'+code)) + "\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	// What Debian's criu 3.17.1 prints on a kernel whose vDSO layout it
	// predates (6.18, a PVM guest).
	vdso := `Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds
Error (criu/vdso.c:627): vdso: Failed to fill self vdso symtable
Error (criu/kerndat.c:1825): kerndat_vdso_fill_symtable failed when initializing kerndat.
Error (criu/crtools.c:263): Could not initialize kernel features detection.
`
	for _, c := range []struct {
		name, criu string
		want       []string // in the reason; none: nil error
	}{
		{"works", fakeCRIU(t, "Looks good.\n", 0), nil},
		{"missing", filepath.Join(t.TempDir(), "no-criu"), []string{"no-criu is not installed"}},
		{"vdso", fakeCRIU(t, vdso, 1), []string{"exited 1", "Unexpected rt vDSO area bounds", "Could not initialize kernel features detection"}},
		{"no error lines", fakeCRIU(t, "something odd\nlast words\n", 1), []string{"last words"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Check(context.Background(), c.criu)
			if c.want == nil {
				if err != nil {
					t.Fatalf("criu check passing: %v", err)
				}
				return
			}
			var ue *UnavailableError
			if !errors.As(err, &ue) {
				t.Fatalf("error %v is not an *UnavailableError", err)
			}
			if !errors.Is(err, ErrNoCRIU) || !errors.Is(err, errdefs.ErrFailedPrecondition) {
				t.Errorf("error %v is not of ErrNoCRIU and FailedPrecondition", err)
			}
			for _, w := range c.want {
				if !strings.Contains(ue.Reason, w) {
					t.Errorf("reason %q lacks %q", ue.Reason, w)
				}
			}
		})
	}
}
