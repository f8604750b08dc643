//go:build tools

// Package tools pins the comparison runtime of husk's benchmarks: the
// newest containerd and runc, built from the module proxy (see README.md).
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/opencontainers/runc"
)
