package doctor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/husk-runtime/husk/image"
)

// RegistryChecks checks that every <config_path>/<host>/hosts.toml parses
// the way a pull parses it, and that the auth file (if configured and
// present) is a readable docker-style config.json, not readable by others.
func RegistryChecks(cfg Config) []Check {
	return []Check{hostsCheck(cfg.RegistryConfigPath), authFileCheck(cfg.AuthFile)}
}

func hostsCheck(dir string) Check {
	c := Check{Name: "registry/hosts"}
	if dir == "" {
		c.Status, c.Reason = OK, "registry.config_path is off: pulls go to each registry directly"
		return c
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		c.Status, c.Reason = OK, dir+" does not exist: pulls go to each registry directly"
		return c
	}
	if err != nil {
		c.Status, c.Reason = Fail, fmt.Sprintf("read registry config dir %s: %v", dir, err)
		return c
	}
	n := 0
	var errs []error
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		hd := filepath.Join(dir, e.Name())
		if _, err := os.Stat(filepath.Join(hd, "hosts.toml")); err == nil {
			n++
		}
		if err := image.CheckHostDir(hd); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		c.Status, c.Reason = Fail, oneLine(err)+" (pulls from those registries fail)"
		return c
	}
	c.Status, c.Reason = OK, fmt.Sprintf("%d hosts.toml %s under %s parse", n, plural(n, "file", "files"), dir)
	return c
}

func authFileCheck(path string) Check {
	c := Check{Name: "registry/auth_file"}
	if path == "" {
		c.Status, c.Reason = Info, "registry.auth_file is off"
		return c
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		c.Status, c.Reason = OK, path+" does not exist: pulls without credentials in the request go anonymous"
		return c
	}
	if err != nil {
		c.Status, c.Reason = Fail, fmt.Sprintf("stat auth file: %v", err)
		return c
	}
	b, err := os.ReadFile(path)
	if err != nil {
		c.Status, c.Reason = Fail, fmt.Sprintf("read auth file: %v", err)
		return c
	}
	var f struct {
		Auths map[string]json.RawMessage `json:"auths"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		c.Status, c.Reason = Fail, fmt.Sprintf("auth file %s: %v (pulls that need it fail)", path, err)
		return c
	}
	c.Status, c.Reason = OK, fmt.Sprintf("%s parses, %d %s", path, len(f.Auths), plural(len(f.Auths), "entry", "entries"))
	// It holds credentials for every pull.
	if fi.Mode().Perm()&0o044 != 0 {
		c.Status, c.Reason = Warn, c.Reason+fmt.Sprintf("; but it is readable by group or others (mode %04o): chmod 600", fi.Mode().Perm())
	}
	return c
}
