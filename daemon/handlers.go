package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/husk-runtime/husk/config"
	"github.com/husk-runtime/husk/layout"
	"github.com/husk-runtime/husk/sandbox"
	"github.com/husk-runtime/husk/shim"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// handlers turns [runtimes.NAME] into the RuntimeClass handlers pods may
// name. The default handler ("") is husk-oci; a "husk" handler is husk-oci
// under another name, sharing its state root (container ids are unique);
// an "oci" handler is an external runtime with a root of its own. One
// whose binary is not installed is left out with a warning: the defaults
// name crun and runc, which a node may lack.
func handlers(cfg config.Config, ociPath string, log *slog.Logger) map[string]sandbox.Handler {
	systemd := cfg.CgroupDriver == config.CgroupSystemd
	huskOCI := shim.Runtime{Path: ociPath, Root: layout.Layout{Root: cfg.Root, State: cfg.State}.OCIDir(), SystemdCgroup: systemd}
	out := map[string]sandbox.Handler{"": {Runtime: huskOCI, RecursiveReadOnly: true, Userns: true}}
	for name, r := range cfg.Runtimes {
		switch r.Type {
		case config.RuntimeHusk:
			rt := huskOCI
			if r.Root != "" {
				rt.Root = r.Root
			}
			out[name] = sandbox.Handler{Runtime: rt, RecursiveReadOnly: true, Userns: true}
		case config.RuntimeOCI:
			path, err := exec.LookPath(r.Path)
			if err != nil {
				log.Warn("runtime handler left out: its runtime is not installed", "handler", name, "path", r.Path, "error", err)
				continue
			}
			root := r.Root
			if root == "" {
				root = filepath.Join(cfg.State, "runtimes", name)
			}
			h := sandbox.Handler{
				Runtime:           shim.Runtime{Path: path, Root: root, CLI: true, SystemdCgroup: systemd},
				RecursiveReadOnly: mountOption(path, "rro"),
				SpecVersion:       specVersion(path),
			}
			out[name] = h
			log.Info("runtime handler", "handler", name, "path", path, "root", root, "rro", h.RecursiveReadOnly, "spec", h.SpecVersion)
		}
	}
	return out
}

// mountOption asks the runtime's `features` (runc 1.1+, crun 1.9+; the
// runtime-spec features document) whether it knows a mount option. A
// runtime without the command, like Debian 12's crun 1.8, is taken not to:
// a feature is only advertised where it is known to work.
func mountOption(path, opt string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "features").Output()
	if err != nil {
		return false
	}
	var f struct {
		MountOptions []string `json:"mountOptions"`
	}
	if json.Unmarshal(out, &f) != nil {
		return false
	}
	return slices.Contains(f.MountOptions, opt)
}

// specVersion is the runtime-spec version a runtime says it implements
// (the "spec: 1.0.0" line of runc's and crun's --version), when it is
// older than the one husk writes; "" keeps husk's. Specs are written at
// the older version: the fields husk uses beyond it are ones both runtimes
// read regardless of the version (crun 1.8 checks only that it is 1.0.x).
func specVersion(path string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(out), "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(l), "spec: ")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if olderSpec(v, specs.Version) {
			return v
		}
	}
	return ""
}

// olderSpec compares "major.minor.patch[-suffix]" versions.
func olderSpec(a, b string) bool {
	parse := func(v string) [3]int {
		v, _, _ = strings.Cut(v, "-")
		var n [3]int
		for i, f := range strings.SplitN(v, ".", 3) {
			n[i], _ = strconv.Atoi(f)
		}
		return n
	}
	x, y := parse(a), parse(b)
	for i := range x {
		if x[i] != y[i] {
			return x[i] < y[i]
		}
	}
	return false
}
