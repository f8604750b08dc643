package daemon

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// oomScoreAdjFloor finds the lowest oom_score_adj husk may give a
// container. Lowering it needs CAP_SYS_RESOURCE, which nested and rootless
// setups (and these machines) lack even as root; then nothing below our own
// value can be set, and asking for it fails every container start. Like
// containerd's restrict_oom_score_adj, but detected: try to lower ours by
// one and put it back.
func oomScoreAdjFloor() (int, error) {
	const path = "/proc/self/oom_score_adj"
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	cur, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	if cur <= -1000 {
		return -1000, nil
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(cur-1)), 0); err != nil {
		return cur, nil // restricted: clamp to our own value
	}
	// Raising back is always allowed.
	if err := os.WriteFile(path, []byte(strconv.Itoa(cur)), 0); err != nil {
		return 0, fmt.Errorf("restore %s to %d: %w", path, cur, err)
	}
	return -1000, nil
}
