package kubepod

// Warning is a part of a Pod that husk cannot honour without a cluster (or
// at all), named by its field path so the user finds it in the manifest.
// The rest of the Pod still runs.
type Warning struct {
	Field   string // e.g. spec.volumes[0].secret
	Message string // e.g. PersistentVolumeClaims need a cluster; volume skipped
}

func (w Warning) String() string { return w.Field + ": " + w.Message }

// Under returns w with its field path put under prefix (a workload's
// pod template path, e.g. "spec.template.").
func (w Warning) Under(prefix string) Warning {
	if prefix == "" {
		return w
	}
	return Warning{Field: prefix + w.Field, Message: w.Message}
}

type warnings []Warning

func (ws *warnings) add(field, msg string) { *ws = append(*ws, Warning{Field: field, Message: msg}) }
