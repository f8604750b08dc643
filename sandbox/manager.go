// Package sandbox is husk's core: pods and their containers, their records
// on disk, the OCI specs they run with, and recovery after a crash. It
// decides everything; the per-pod shim only carries out what it is told.
package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/husk-runtime/husk/hostcgroup"
	"github.com/husk-runtime/husk/image"
	"github.com/husk-runtime/husk/layout"
	"github.com/husk-runtime/husk/network"
	"github.com/husk-runtime/husk/shim"
)

// Images is what the manager needs of the image store.
type Images interface {
	Resolve(ref string) (image.Image, error)
	Mount(img image.Image, dir string, readonly bool, idmap *image.IDMap) (string, error)
	// Unmount undoes Mount on dir; a dir not mounted is fine.
	Unmount(dir string) error
	Collect() error
}

// Network is what the manager needs of pod networking.
type Network interface {
	NetnsPath(podID string) string
	CreateNetns(podID string) (string, error)
	AdoptNetns(podID, nsFile string) (string, error)
	// RemoveNetns unpins and removes a netns file; a missing one is fine.
	RemoveNetns(path string) error
	Setup(ctx context.Context, pn network.PodNetwork) (network.Result, error)
	Teardown(ctx context.Context, pn network.PodNetwork) error
}

// Config locates the manager's state and helpers.
type Config struct {
	Root         string // persistent: pods/
	State        string // runtime: s/ (shim sockets), oci/ (libcontainer state)
	ShimPath     string
	OCIPath      string
	SandboxImage string // image the infra container runs (the built-in pause by default)
	// MinOOMScoreAdj is the lowest oom_score_adj this host lets husk set
	// (see OOMScoreAdjFloor).
	MinOOMScoreAdj int
	// CDISpecDirs hold the CDI device specs (/etc/cdi, /var/run/cdi).
	CDISpecDirs []string
	// SeccompNativeArchOnly narrows app containers' seccomp filters to the
	// native ABI too (see nativeArchOnly): faster starts, no 32-bit programs.
	SeccompNativeArchOnly bool
	// JSONLog has the shims log JSON lines, as the daemon does.
	JSONLog bool
	// Recorder is told of pod starts and recoveries (the daemon's
	// metrics); nil records nothing.
	Recorder Recorder
	// Cgroups is the host's cgroup layout, read once by the daemon; nil
	// reads it here.
	Cgroups *hostcgroup.Layout
	// Handlers are the RuntimeClass handlers pods may name, by name; ""
	// (the default) is husk-oci with OCIPath, added when absent.
	Handlers map[string]Handler
	// Shims starts and reaches the pods' shims; nil is real husk-shim
	// processes (ShimPath).
	Shims Shims
	// Plugins are the NRI plugins told of and asked about each change;
	// nil is none.
	Plugins Plugins
	// SystemdCgroup is the systemd cgroup driver: pods' cgroups are the
	// slices kubelet names, containers' transient scopes in them.
	SystemdCgroup bool
	// CRIU is the criu binary the checkpoint RPCs check for; "" is
	// checkpoint.DefaultCRIU on PATH.
	CRIU string
}

// Handler is one RuntimeClass handler: the runtime that makes its pods'
// containers and what it can do, as Status reports it.
type Handler struct {
	Runtime shim.Runtime
	// RecursiveReadOnly: the runtime takes the "rro" mount option.
	RecursiveReadOnly bool
	// Userns: pods of this handler may have user namespaces (husk-oci
	// only: the idmapped rootfs and the joined namespace are built for
	// libcontainer's handling of them, and tested with it).
	Userns bool
	// SpecVersion, when set, is the ociVersion written in its specs: the
	// runtime-spec version the runtime says it implements, where that is
	// older than husk's (crun 1.8 refuses any but 1.0.x with "unknown
	// version specified").
	SpecVersion string
}

// Manager runs pods and containers.
type Manager struct {
	cfg     Config
	paths   layout.Layout // where every record and runtime file lives
	images  Images
	net     Network
	shims   Shims
	plugins Plugins
	log     *slog.Logger
	rec     Recorder
	cg      *hostcgroup.Layout // what every cgroup decision asks
	cgr     *cgroupReader      // the stats reads, over cg
	stats   statsCache         // CPU samples and layer figures (stats_cache.go)

	mu    sync.RWMutex // guards the maps and every record field
	pods  map[string]*Pod
	ctrs  map[string]*Container
	names map[string]string // reserved pod and container names -> id
	// gen counts the changes made under mu through set: an answer built
	// from the records at one generation stays true until it moves
	// (Generation).
	gen atomic.Uint64

	locks sync.Map // pod id -> *sync.Mutex serializing that pod's lifecycle
	cdi   *cdiDevices
	// usernsErr says why pods cannot have user namespaces here, nil when
	// they can (probeUserns at start).
	usernsErr error
	ev        eventHub // GetContainerEvents subscribers (events.go)
	// unreadable lists the records recovery could not read, which it left
	// alone (recover.go); set at start, read-only after.
	unreadable []string
}

// UnreadableRecords lists the pod and container records found unreadable
// at start: left out of every list, their dirs left for husk doctor.
func (m *Manager) UnreadableRecords() []string { return m.unreadable }

// New opens the manager over its state, recovering what a previous daemon
// left.
func New(ctx context.Context, cfg Config, images Images, net Network, log *slog.Logger) (*Manager, error) {
	m := &Manager{cfg: cfg, paths: layout.Layout{Root: cfg.Root, State: cfg.State}, images: images, net: net, shims: cfg.Shims, log: log, cg: cfg.Cgroups, cdi: &cdiDevices{dirs: cfg.CDISpecDirs},
		pods: map[string]*Pod{}, ctrs: map[string]*Container{}, names: map[string]string{}}
	if m.shims == nil {
		m.shims = processShims{}
	}
	if m.plugins = cfg.Plugins; m.plugins == nil {
		m.plugins = noPlugins{}
	}
	if m.rec = cfg.Recorder; m.rec == nil {
		m.rec = nopRecorder{}
	}
	if m.cg == nil {
		cg, err := hostcgroup.Read()
		if err != nil {
			return nil, err
		}
		m.cg = cg
	}
	m.cgr = newCgroupReader(m.cg)
	m.cgr.files = newOpenFiles()
	if m.cfg.Handlers == nil {
		m.cfg.Handlers = map[string]Handler{}
	}
	if _, ok := m.cfg.Handlers[""]; !ok {
		m.cfg.Handlers[""] = Handler{Runtime: shim.Runtime{Path: cfg.OCIPath, Root: m.paths.OCIDir()}, RecursiveReadOnly: true, Userns: true}
	}
	dirs := []string{m.paths.PodsDir(), m.paths.ShimSocketDir(), m.paths.OCIDir()}
	for _, h := range m.cfg.Handlers {
		dirs = append(dirs, h.Runtime.Root)
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	if m.usernsErr = probeUserns(cfg.Root); m.usernsErr != nil {
		log.Info("pods cannot have user namespaces on this node", "reason", m.usernsErr)
	}
	if err := m.recover(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// handler returns the RuntimeClass handler named name, InvalidArgument
// naming it (and the ones there are) when none is configured.
func (m *Manager) handler(name string) (Handler, error) {
	if h, ok := m.cfg.Handlers[name]; ok {
		return h, nil
	}
	return Handler{}, fmt.Errorf("runtime handler %q is not configured (handlers: %s): %w", name, strings.Join(m.HandlerNames(), ", "), ErrInvalid)
}

// HandlerNames lists the configured handlers, the default ("") first,
// as Status reports them.
func (m *Manager) HandlerNames() []string {
	names := make([]string, 0, len(m.cfg.Handlers))
	for n := range m.cfg.Handlers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// HandlerFeatures says what handler name's runtime can do.
func (m *Manager) HandlerFeatures(name string) (rro, userns bool) {
	h := m.cfg.Handlers[name]
	return h.RecursiveReadOnly, h.Userns && m.usernsErr == nil
}

// podRuntime is the runtime pod p's containers are made with. A pod whose
// handler was removed from the configuration since it was made is still
// driven by the runtime its shim was started with; here (the daemon's own
// fallback delete) it gets the default one.
func (m *Manager) podRuntime(p *Pod) shim.Runtime {
	if h, ok := m.cfg.Handlers[p.Handler]; ok {
		return h.Runtime
	}
	return m.cfg.Handlers[""].Runtime
}

func (m *Manager) shim(p *Pod) Shim { return m.shims.Dial(p.ShimSocket) }

func (m *Manager) podLock(id string) func() {
	mu := m.podMutex(id)
	mu.Lock()
	return mu.Unlock
}

// lockLive takes pod p's lock and reports whether p is still the pod of its
// id. A call looks p up, then may wait for the lock while a
// RemovePodSandbox holds it; it then finds p gone and must not act on it:
// a StopPodSandbox that lost that race once wrote the record of a pod
// whose dir Remove had just deleted. Each call that changes a pod or its
// containers looks again under the lock.
func (m *Manager) lockLive(p *Pod) (unlock func(), live bool) {
	unlock = m.podLock(p.ID)
	m.mu.RLock()
	live = m.pods[p.ID] == p
	m.mu.RUnlock()
	return unlock, live
}

// containerLive reports whether c is still the container of its id; the
// caller holds its pod's lock.
func (m *Manager) containerLive(c *Container) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.ctrs[c.ID] == c
}

// podMutex is the lock serializing pod id's lifecycle.
func (m *Manager) podMutex(id string) *sync.Mutex {
	v, _ := m.locks.LoadOrStore(id, &sync.Mutex{})
	return v.(*sync.Mutex)
}

func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// lookup resolves an id or a unique id prefix, as crictl users type them.
func lookup[T any](m *Manager, table map[string]*T, what, id string) (*T, error) {
	if id == "" {
		return nil, fmt.Errorf("%s id is empty: %w", what, ErrInvalid)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if v, ok := table[id]; ok {
		return v, nil
	}
	var found *T
	n := 0
	for k, v := range table {
		if strings.HasPrefix(k, id) {
			found = v
			n++
		}
	}
	switch {
	case n == 1:
		return found, nil
	case n > 1:
		return nil, fmt.Errorf("%s id prefix %q matches %d %ss: %w", what, id, n, what, ErrInvalid)
	}
	return nil, fmt.Errorf("%s %q: %w", what, id, ErrNotFound)
}

// pod returns the live record of the pod with id (or a unique prefix of
// it): its fields change under m.mu (m.set), so read them under it.
func (m *Manager) pod(id string) (*Pod, error) { return lookup(m, m.pods, "pod sandbox", id) }

// container is pod for containers.
func (m *Manager) container(id string) (*Container, error) {
	return lookup(m, m.ctrs, "container", id)
}

// containerAndPod finds a container and its pod.
func (m *Manager) containerAndPod(id string) (*Container, *Pod, error) {
	c, err := m.container(id)
	if err != nil {
		return nil, nil, err
	}
	p, err := m.pod(c.PodID)
	if err != nil {
		return nil, nil, err
	}
	return c, p, nil
}

func (m *Manager) savePod(p *Pod) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return writeRecord(filepath.Join(m.paths.PodDir(p.ID), "pod.json"), p)
}

func (m *Manager) saveContainer(c *Container) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return writeRecord(filepath.Join(m.paths.ContainerDir(c.PodID, c.ID), "container.json"), c)
}

// updatePod changes pod p's fields with f, under the manager's lock, and
// writes its record: the one way a pod's state changes.
func (m *Manager) updatePod(p *Pod, f func()) error {
	m.set(f)
	return m.savePod(p)
}

// updateContainer is updatePod for a container.
func (m *Manager) updateContainer(c *Container, f func()) error {
	m.set(f)
	return m.saveContainer(c)
}

// set changes record fields under the manager's lock, in memory only. It
// is the one way a record or the set of records changes once the manager
// serves (recovery, before, writes them directly), so it moves the
// generation.
func (m *Manager) set(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f()
	m.gen.Add(1)
}

// Generation moves whenever a pod or container record is added, changed or
// removed. Read before a list, it tells whether the list is still true: a
// change made while the list was built moves it past the value read.
func (m *Manager) Generation() uint64 { return m.gen.Load() }
