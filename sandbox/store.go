package sandbox

import (
	"github.com/husk-runtime/husk/atomicfile"
)

func writeRecord(path string, v any) error { return atomicfile.WriteJSON(path, v) }

func readRecord(path string, v any) error { return atomicfile.ReadJSON(path, v) }
