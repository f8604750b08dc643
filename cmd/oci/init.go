package main

import (
	"os"

	"github.com/opencontainers/runc/libcontainer"
	// nsexec's C constructor must run before the Go runtime starts threads.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
	// Without it libcontainer has no device-rule manager and init fails.
	_ "github.com/opencontainers/cgroups/devices"
)

// libcontainer re-executes this binary as "husk-oci init" to become the
// container's init. The hook must run in init(), before main parses any
// flags, or the child never reports ready ("procReady not received").
func init() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		libcontainer.Init() // never returns
	}
}
