package sandbox

import (
	"github.com/husk-runtime/husk/atomicfile"
)

func writeRecord(path string, v any) error { return atomicfile.WriteJSON(path, v) }

func readRecord(path string, v any) error { return atomicfile.ReadJSON(path, v) }

// UsedLayers lists the layer dirs that the recorded pods and containers
// use, for the image store's collection (image.Store.SetInUse). It takes
// only the manager's read lock and calls nothing.
func (m *Manager) UsedLayers() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []string
	for _, p := range m.pods {
		out = append(out, p.Layers...)
	}
	for _, c := range m.ctrs {
		out = append(out, c.Layers...)
	}
	return out
}
