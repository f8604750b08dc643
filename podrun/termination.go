package podrun

// Termination messages, as kubelet reads them (kuberuntime_container.go,
// getTerminationMessage in 1.37): what the container wrote to its
// terminationMessagePath, at most 4 KiB; with FallbackToLogsOnError, when
// it wrote nothing and failed, the last 80 lines of its log, at most 2 KiB.

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/husk-runtime/husk/crilog"
	"github.com/husk-runtime/husk/kubepod"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	maxTerminationMessage = 4096
	maxFallbackLog        = 2048
	fallbackLogLines      = 80
)

// newTerminationLog makes the empty file an attempt's termination message
// goes to; world-writable, as kubelet's, so a non-root container can
// write it.
func newTerminationLog(path string) error {
	if path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, nil, 0o666); err != nil {
		return err
	}
	return os.Chmod(path, 0o666) // past the umask
}

// terminationMessage is the message of c's exited attempt st.
func terminationMessage(c kubepod.Container, st *runtimeapi.ContainerStatus) string {
	msg := ""
	if c.TerminationLog != "" {
		if f, err := os.Open(c.TerminationLog); err == nil {
			b, _ := io.ReadAll(io.LimitReader(f, maxTerminationMessage))
			f.Close()
			msg = string(b)
		} else if !errors.Is(err, os.ErrNotExist) {
			msg = "(termination message unreadable: " + err.Error() + ")"
		}
	}
	if msg == "" && c.FallbackToLogs && st.ExitCode != 0 && st.LogPath != "" {
		msg = crilog.Tail(st.LogPath, fallbackLogLines)
		if len(msg) > maxFallbackLog {
			msg = msg[len(msg)-maxFallbackLog:]
		}
	}
	return strings.TrimRight(msg, "\n")
}
