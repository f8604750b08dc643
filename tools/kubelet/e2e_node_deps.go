//go:build tools

// Package kubelet keeps, for `go mod tidy`, the requirements of the node
// e2e suite (`go test -c k8s.io/kubernetes/test/e2e_node`, a test package,
// so it cannot be a tool directive). It is never built.
package kubelet

import (
	_ "k8s.io/kubernetes/test/e2e_node"
)
