package cri

import (
	"encoding/json"

	"github.com/pelletier/go-toml/v2"
)

// verboseInfo renders the runtime-specific detail of a verbose status, a
// JSON object as crictl inspect expects.
func verboseInfo(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "{}"
	}
	return string(b)
}

// configInfo renders the daemon's configuration with its TOML key names
// (the names `husk config default` documents), as JSON.
func configInfo(cfg any) string {
	b, err := toml.Marshal(cfg)
	if err != nil {
		return verboseInfo(map[string]string{"error": err.Error()})
	}
	var m map[string]any
	if err := toml.Unmarshal(b, &m); err != nil {
		return verboseInfo(map[string]string{"error": err.Error()})
	}
	return verboseInfo(m)
}
