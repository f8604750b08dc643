// Package doctor checks a node for what husk needs (kernel features, CNI,
// registry config) and audits it for husk's leftovers: shims, mounts,
// network namespaces, veths, IP leases, CNI cache entries, cgroups and state
// dirs that belong to no pod the runtime knows. Fix removes those leftovers,
// and only those: everything it touches is found under husk's own root and
// state dirs, on husk's own bridge, or is a cgroup named by a pod id that
// husk's dirs name too (DESIGN.md, "What a pod costs, and what it may not
// leave").
//
// The host is reached through Host, so the checks are tested against fake
// /proc files, fake dirs and a fake netlink.
package doctor

import (
	"context"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/husk-runtime/husk/layout"
)

// Status is the outcome of one check.
type Status string

// The statuses, from fine to failed.
const (
	OK   Status = "ok"
	Info Status = "info" // worth knowing, not a problem
	Warn Status = "warn" // works, but something is off or missing
	Fail Status = "fail" // husk cannot do part of its job
)

// Check is one line of the report.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Reason string `json:"reason"`
}

// Leftover kinds, in the order Fix removes them: processes before the
// mounts they hold, mounts before the dirs they sit in, CNI DEL while the
// netns is still there, cgroups once no process is left in them.
const (
	KindShim   = "shim"
	KindMount  = "mount"
	KindCNI    = "cni-cache" // an attachment libcni cached at ADD, whose DEL never succeeded
	KindLease  = "lease"
	KindVeth   = "veth"
	KindNetns  = "netns"
	KindCgroup = "cgroup"
	KindDir    = "dir" // a pod dir, libcontainer state dir or shim socket
)

var kindOrder = map[string]int{KindShim: 0, KindMount: 1, KindCNI: 2, KindLease: 3, KindVeth: 4, KindNetns: 5, KindCgroup: 6, KindDir: 7}

// Leftover is something of husk's that no live pod owns.
type Leftover struct {
	Kind string `json:"kind"`
	// Path names it: a mount point, pin file, cgroup path, interface
	// name, lease file, dir, or "pid N" for a shim.
	Path string `json:"path"`
	// Pod is the husk pod id it is named by, when it has one.
	Pod    string `json:"pod,omitempty"`
	Reason string `json:"reason"`

	pid  int      // KindShim
	dirs []string // KindCgroup: the cgroup's dir in each hierarchy
}

// Action is what Fix did about one leftover.
type Action struct {
	Kind   string `json:"kind"`
	Path   string `json:"path"`
	Pod    string `json:"pod,omitempty"`
	Done   string `json:"done"` // "removed", "gone already", ...
	Error  string `json:"error,omitempty"`
	Reason string `json:"-"`
}

// Config is what doctor needs of husk's configuration: the same keys the
// daemon reads, so doctor looks exactly where the daemon puts things.
type Config struct {
	Root, State        string
	CNIConfDir         string
	CNIBinDirs         []string
	Bridge             string
	DefaultNetwork     bool
	RegistryConfigPath string
	AuthFile           string
}

// The layout the daemon builds (package layout), which doctor reads
// without a daemon.
func (c Config) paths() layout.Layout { return layout.Layout{Root: c.Root, State: c.State} }
func (c Config) podsDir() string      { return c.paths().PodsDir() }
func (c Config) netnsDir() string     { return c.paths().NetnsDir() }
func (c Config) shimSockDir() string  { return c.paths().ShimSocketDir() }
func (c Config) ociDir() string       { return c.paths().OCIDir() }
func (c Config) ipamDir() string      { return c.paths().IPAMDir() }
func (c Config) cniCacheDir() string  { return c.paths().CNICacheDir() }

// idRe matches husk's pod and container ids (sandbox.newID): 32 random
// bytes in hex. Only entries so named are ever taken for leftovers, so a
// file an operator put in husk's dirs is left alone.
var idRe = regexp.MustCompile(`^[0-9a-f]{64}$`)

func isID(s string) bool { return idRe.MatchString(s) }

// Port is an interface enslaved to a bridge.
type Port struct {
	Name string
	// PeerNsID is the nsid (as the host netns numbers it) of the netns
	// the veth's other end is in; -1 when that end is in the host netns
	// or the interface is no veth.
	PeerNsID int
}

// Links is the part of netlink doctor uses.
type Links interface {
	// Ports lists the interfaces enslaved to bridge; none (and no error)
	// when the bridge does not exist.
	Ports(bridge string) ([]Port, error)
	// NsID returns the nsid of the netns pinned at path, -1 if it has none.
	NsID(path string) (int, error)
	// Exists reports whether an interface of that name exists.
	Exists(name string) bool
	// Delete removes the interface (and a veth's peer with it).
	Delete(name string) error
}

// Host is doctor's boundary with the machine.
type Host struct {
	Proc      string // "/proc"
	Sys       string // "/sys"
	MountInfo string // "/proc/self/mountinfo"
	Links     Links
	// Unmount takes down every mount at path (mount.Unmount); a path
	// with none is fine.
	Unmount func(path string) error
	// Kill sends sig to pid.
	Kill func(pid int, sig syscall.Signal) error
	// Teardown runs CNI DEL for a pod, with netns "" when it is gone.
	Teardown func(ctx context.Context, podID, netns string) error
	Now      func() time.Time
}

// Known is what the runtime knows: the pods and containers whose things
// are not leftovers.
type Known struct {
	// Source says where this came from, for the report: the daemon, or
	// the records on disk when the daemon could not be asked.
	Source     string
	Pods       map[string]bool
	Containers map[string]bool
}

func (k Known) pod(id string) bool       { return k.Pods[id] }
func (k Known) container(id string) bool { return k.Containers[id] }

func (k *Known) merge(o Known) {
	if k.Pods == nil {
		k.Pods = map[string]bool{}
	}
	if k.Containers == nil {
		k.Containers = map[string]bool{}
	}
	for id := range o.Pods {
		k.Pods[id] = true
	}
	for id := range o.Containers {
		k.Containers[id] = true
	}
}

// Lister reports the live pods; Audit calls it before and after its scan.
type Lister func(ctx context.Context) (Known, error)

// oneLine joins a (joined) error onto one line.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
