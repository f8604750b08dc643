package main

import (
	"github.com/husk-runtime/husk/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

type specProcess = specs.Process

func readProcess(path string) (*specs.Process, error) { return oci.ReadJSON[specs.Process](path) }
