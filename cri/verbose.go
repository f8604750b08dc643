package cri

import "encoding/json"

// verboseInfo renders the runtime-specific detail of a verbose status, a
// JSON object as crictl inspect expects.
func verboseInfo(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "{}"
	}
	return string(b)
}
