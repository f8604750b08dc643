//go:build tools

// Package tools pins the test-only dependencies of critest
// (sigs.k8s.io/cri-tools/cmd/critest is a test package, so it cannot be a
// `tool` directive): this file keeps `go mod tidy` from dropping the go.sum
// entries `go test -c sigs.k8s.io/cri-tools/cmd/critest` needs. It is never built.
package tools

import (
	_ "github.com/onsi/ginkgo/v2"
	_ "github.com/onsi/gomega"
	_ "sigs.k8s.io/cri-tools/pkg/benchmark"
	_ "sigs.k8s.io/cri-tools/pkg/common"
	_ "sigs.k8s.io/cri-tools/pkg/framework"
	_ "sigs.k8s.io/cri-tools/pkg/validate"
	_ "sigs.k8s.io/cri-tools/pkg/version"
)
