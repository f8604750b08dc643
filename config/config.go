// Package config holds husk's daemon configuration: TOML with embedded
// defaults, so a daemon started with no file at all is fully configured.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"

	"github.com/husk-runtime/husk/logformat"
	"github.com/pelletier/go-toml/v2"
)

//go:embed default.toml
var defaultTOML []byte

// DefaultPath is where the daemon looks when --config is not given.
const DefaultPath = "/etc/husk/config.toml"

// Config is the daemon configuration. Field tags are the TOML keys that
// `husk config default` documents.
type Config struct {
	Root         string   `toml:"root"`
	State        string   `toml:"state"`
	Socket       string   `toml:"socket"`
	LogLevel     string   `toml:"log_level"`
	LogFormat    string   `toml:"log_format"`
	CgroupDriver string   `toml:"cgroup_driver"`
	SandboxImage string   `toml:"sandbox_image"`
	ShimPath     string   `toml:"shim_path"`
	OCIPath      string   `toml:"oci_path"`
	CDISpecDirs  []string `toml:"cdi_spec_dirs"`
	// SeccompNativeArchOnly: seccomp filters of app containers cover only
	// the native ABI.
	SeccompNativeArchOnly bool     `toml:"seccomp_native_arch_only"`
	CNI                   CNI      `toml:"cni"`
	Registry              Registry `toml:"registry"`
	// Runtimes are the RuntimeClass handlers beside the default one
	// (named "", husk-oci), keyed by handler name.
	Runtimes map[string]Runtime `toml:"runtimes"`

	Streaming Streaming `toml:"streaming"`
	Metrics   Metrics   `toml:"metrics"`
	Tracing   Tracing   `toml:"tracing"`
	NRI       NRI       `toml:"nri"`
}

// NRI configures the NRI runtime side (package nri).
type NRI struct {
	Disable          bool   `toml:"disable"`
	SocketPath       string `toml:"socket_path"`
	PluginPath       string `toml:"plugin_path"`
	PluginConfigPath string `toml:"plugin_config_path"`
	// RegistrationTimeoutSeconds and RequestTimeoutSeconds: a plugin
	// slower than that to register, or to answer a request, is dropped.
	RegistrationTimeoutSeconds int `toml:"registration_timeout_seconds"`
	RequestTimeoutSeconds      int `toml:"request_timeout_seconds"`
}

// Tracing configures the OpenTelemetry span export (OTLP over gRPC).
type Tracing struct {
	// Endpoint is host:port of an OTLP/gRPC receiver (an OpenTelemetry
	// collector); "" is off.
	Endpoint string `toml:"endpoint"`
	// Insecure sends without TLS (a collector on the node's loopback).
	Insecure bool `toml:"insecure"`
	// SamplingRatio is the share of new traces kept, 0 to 1; a call
	// carrying kubelet's trace context follows its sampled flag.
	SamplingRatio float64 `toml:"sampling_ratio"`
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	// Address is host:port of http://ADDRESS/metrics; "" is off. A host
	// left out (":9191") is loopback: the endpoint has no authentication.
	Address string `toml:"address"`
}

// Streaming configures the exec/attach/port-forward server.
type Streaming struct {
	// Address is host:port; port 0 picks a free one. It serves without
	// TLS or authentication (the URLs carry single-use tokens), so it
	// belongs on loopback unless a proxy in front of it adds both.
	Address string `toml:"address"`
}

// CNI configures pod networking.
type CNI struct {
	ConfDir        string   `toml:"conf_dir"`
	BinDirs        []string `toml:"bin_dirs"`
	DefaultNetwork bool     `toml:"default_network"`
	Bridge         string   `toml:"bridge"`
	Subnet         string   `toml:"subnet"`
}

// Runtime is one RuntimeClass handler, [runtimes.NAME].
type Runtime struct {
	// Type is "husk" (husk's own husk-oci, which embeds libcontainer) or
	// "oci" (an OCI runtime driven through its runc-compatible command
	// line: crun, runc, youki).
	Type string `toml:"type"`
	// Path is the runtime's binary (type "oci"); a bare name is looked up
	// in PATH. A handler whose binary is missing is left out with a
	// warning, so the defaults work on nodes without crun or runc.
	Path string `toml:"path"`
	// Root is the runtime's state dir; "" is <state>/runtimes/<name>.
	Root string `toml:"root"`
}

// The cgroup drivers: cgroupfs writes the cgroup tree itself; systemd has
// systemd make each container a transient scope in the pod's slice (over
// D-Bus), as kubelet's systemd driver expects.
const (
	CgroupFS      = "cgroupfs"
	CgroupSystemd = "systemd"
)

// Runtime types.
const (
	RuntimeHusk = "husk"
	RuntimeOCI  = "oci"
)

// Registry configures image pulls.
type Registry struct {
	ConfigPath string   `toml:"config_path"`
	Insecure   []string `toml:"insecure"`
	// StallTimeoutSeconds abandons a pull that receives nothing that long.
	StallTimeoutSeconds int `toml:"stall_timeout_seconds"`
	// AuthFile is a docker-style config.json ("auths") with credentials
	// for pulls whose CRI request carries none; "" turns it off.
	AuthFile string `toml:"auth_file"`
}

// Default returns the embedded defaults.
func Default() Config {
	var c Config
	if err := toml.Unmarshal(defaultTOML, &c); err != nil {
		// The file is compiled in and covered by a unit test.
		panic(fmt.Sprintf("embedded default config is invalid: %v", err))
	}
	return c
}

// DefaultTOML is the documented default file.
func DefaultTOML() []byte { return defaultTOML }

// Load reads path over the defaults. A missing file at the default path is
// not an error (a fresh node has none); a missing file named explicitly is.
func Load(path string, explicit bool) (Config, error) {
	c := Default()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return c, c.Validate()
	}
	if err != nil {
		return c, fmt.Errorf("read config %s: %w", path, err)
	}
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) {
			return c, fmt.Errorf("config %s: unknown keys:\n%s", path, sm.String())
		}
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, c.Validate()
}

// Validate rejects configurations the daemon cannot honour, naming the key.
func (c Config) Validate() error {
	for key, p := range map[string]string{"root": c.Root, "state": c.State, "socket": c.Socket} {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("config: %s must be an absolute path, got %q", key, p)
		}
	}
	// The daemon's working directory is no place to look for secrets.
	if c.Registry.AuthFile != "" && !filepath.IsAbs(c.Registry.AuthFile) {
		return fmt.Errorf("config: registry.auth_file must be an absolute path or empty, got %q", c.Registry.AuthFile)
	}
	if c.Registry.StallTimeoutSeconds < 0 {
		return fmt.Errorf("config: registry.stall_timeout_seconds must not be negative, got %d", c.Registry.StallTimeoutSeconds)
	}
	for name, r := range c.Runtimes {
		if err := r.validate(name); err != nil {
			return err
		}
	}
	if r := c.Tracing.SamplingRatio; r < 0 || r > 1 {
		return fmt.Errorf("config: tracing.sampling_ratio must be between 0 and 1, got %v", r)
	}
	if err := c.NRI.validate(); err != nil {
		return err
	}
	if err := logformat.Check(c.LogFormat); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if c.CgroupDriver != CgroupFS && c.CgroupDriver != CgroupSystemd {
		return fmt.Errorf("config: cgroup_driver must be %q or %q, got %q", CgroupFS, CgroupSystemd, c.CgroupDriver)
	}
	return nil
}

// handlerName is a RuntimeClass handler: a DNS label, as the RuntimeClass
// API validates it.
var handlerName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func (r Runtime) validate(name string) error {
	key := "runtimes." + name
	if len(name) > 63 || !handlerName.MatchString(name) {
		return fmt.Errorf("config: [%s]: a handler name is a DNS label (lowercase letters, digits and '-', at most 63)", key)
	}
	switch r.Type {
	case RuntimeHusk:
		if r.Path != "" {
			return fmt.Errorf("config: %s.path: a husk handler runs husk-oci (oci_path); path is for type \"oci\"", key)
		}
	case RuntimeOCI:
		if r.Path == "" {
			return fmt.Errorf("config: %s.path: an oci handler needs its runtime's binary", key)
		}
	default:
		return fmt.Errorf("config: %s.type must be %q or %q, got %q", key, RuntimeHusk, RuntimeOCI, r.Type)
	}
	if r.Root != "" && !filepath.IsAbs(r.Root) {
		return fmt.Errorf("config: %s.root must be an absolute path, got %q", key, r.Root)
	}
	return nil
}

func (n NRI) validate() error {
	if n.Disable {
		return nil
	}
	for key, p := range map[string]string{"socket_path": n.SocketPath, "plugin_path": n.PluginPath, "plugin_config_path": n.PluginConfigPath} {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("config: nri.%s must be an absolute path, got %q", key, p)
		}
	}
	for key, v := range map[string]int{"registration_timeout_seconds": n.RegistrationTimeoutSeconds, "request_timeout_seconds": n.RequestTimeoutSeconds} {
		if v <= 0 {
			return fmt.Errorf("config: nri.%s must be positive, got %d", key, v)
		}
	}
	return nil
}
