package main

import (
	"os"
	"runtime/debug"

	"github.com/opencontainers/runc/libcontainer"
	// nsexec's C constructor must run before the Go runtime starts threads.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
	// Without it libcontainer has no device-rule manager and init fails.
	_ "github.com/opencontainers/cgroups/devices"
)

// libcontainer re-executes this binary as "husk-oci init" to become the
// container's init. The hook must run in init(), before main parses any
// flags, or the child never reports ready ("procReady not received").
//
// Neither process collects garbage: each lives for milliseconds and
// allocates a few MB at most (the spec, the libcontainer config, the
// init's own set-up), all of it gone with the process, at the latest when
// runc init execs the container's program. A collection there is pure
// cost, and paid twice per container start (in the helper and in runc
// init, which libcontainer starts with an environment of its own, so
// GOGC=off could not reach it). Measured: pod start p50 172 -> 166.5 ms
// (BenchmarkPodStart/warm/seccomp, 20 pods).
func init() {
	debug.SetGCPercent(-1)
	if len(os.Args) > 1 && os.Args[1] == "init" {
		libcontainer.Init() // never returns
	}
}
