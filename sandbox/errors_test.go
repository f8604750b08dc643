package sandbox

import (
	"errors"
	"strings"
	"testing"
)

// libcontainer's words for a missing command (runc v1.5.3, as husk-oci
// reports them through the shim), and failures that are something else.
func TestNotFoundIfMissingCommand(t *testing.T) {
	for _, c := range []struct {
		msg     string
		command string // "" when the failure is not a missing command
	}{
		{`create abc: start init: unable to start container process: error during container init: exec: "no-such-command": executable file not found in $PATH`, "no-such-command"},
		{`create abc: start init: unable to start container process: error during container init: exec: "/no/such/command": stat /no/such/command: no such file or directory`, "/no/such/command"},
		{`create abc: start init: unable to start container process: error during container init: exec: "/etc/passwd": permission denied`, ""},
		{`create abc: start init: unable to start container process: error during container init: error mounting "/x" to rootfs at "/y": no such file or directory`, ""},
	} {
		err := notFoundIfMissingCommand(errors.New(c.msg))
		if got := errors.Is(err, ErrNotFound); got != (c.command != "") {
			t.Errorf("%q: NotFound %v", c.msg, got)
		}
		if c.command != "" && !strings.Contains(err.Error(), `command "`+c.command+`" is not in`) {
			t.Errorf("%q: message %q does not name the command", c.msg, err)
		}
	}
}
