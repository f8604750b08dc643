package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// layerTTL is how long a writable layer figure is served before it is
// walked again. The walk runs in the background: a request gets the last
// figure at once, so a container with many files never slows a list down.
// Only a container's first figure is walked in the request, when its upper
// dir is new and so nearly empty.
const layerTTL = 2 * time.Second

// rateWindow is the shortest interval over which usage_nano_cores is
// computed: a sample newer than that is not kept as the next base, so two
// clients asking back to back (kubelet and a crictl user) do not turn the
// rate into the noise of a few milliseconds.
const rateWindow = time.Second

type cpuSample struct {
	nanos uint64
	at    time.Time
}

type layerEntry struct {
	usage      LayerUsage
	refreshing bool
}

type layerJob struct{ id, dir, mountpoint string }

// statsCache is a manager's stats state (Manager.stats): the last CPU
// sample of each object, for usage_nano_cores, and writable layer figures.
// Its zero value is ready.
type statsCache struct {
	mu     sync.Mutex
	cpu    map[string]cpuSample // "c/<ctr id>" or "p/<pod id>"
	layers map[string]*layerEntry
	jobs   chan layerJob
	once   sync.Once
}

// rate fills u's NanoCores from the kept sample and keeps u as the next
// base once it is rateWindow newer than the kept one.
func (s *statsCache) rate(key string, u *CgroupUsage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cpu == nil {
		s.cpu = map[string]cpuSample{}
	}
	prev, ok := s.cpu[key]
	if ok {
		if dt := u.At.Sub(prev.at); dt > 0 && u.CPUNanos >= prev.nanos {
			u.NanoCores = uint64(float64(u.CPUNanos-prev.nanos) * 1e9 / float64(dt.Nanoseconds()))
			u.HasRate = true
		}
		if u.CPUNanos < prev.nanos {
			ok = false // counter went back: a new cgroup under the same name
		}
	}
	if !ok || u.At.Sub(prev.at) >= rateWindow {
		s.cpu[key] = cpuSample{u.CPUNanos, u.At}
	}
}

// prune drops the state of containers and pods the manager no longer has.
func (s *statsCache) prune(m *Manager) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.cpu {
		kind, id := k[:1], k[2:]
		if (kind == "c" && m.ctrs[id] == nil) || (kind == "p" && m.pods[id] == nil) {
			delete(s.cpu, k)
		}
	}
	for id := range s.layers {
		if m.ctrs[id] == nil {
			delete(s.layers, id)
		}
	}
	// Open cgroup files of what stopped or went: forgetStats closes
	// them as it happens; this catches a list that reopened them in
	// between.
	if m.cgr == nil {
		return
	}
	for _, k := range m.cgr.files.keys() {
		kind, id := k[:1], k[2:]
		c, p := m.ctrs[id], m.pods[id]
		if (kind == "c" && (c == nil || (c.State != ContainerRunning && c.State != ContainerCreated))) ||
			(kind == "p" && (p == nil || p.State != PodReady)) {
			m.cgr.files.forget(k)
		}
	}
}

// forgetStats closes the cgroup files kept open for object key ("c/<id>",
// "p/<id>") as it stops or goes, so no removed cgroup stays pinned.
func (m *Manager) forgetStats(key string) {
	if m.cgr != nil {
		m.cgr.files.forget(key)
	}
}

// layer returns the writable layer usage of container id, whose upper dir
// is dir; nil when there is none.
func (s *statsCache) layer(id, dir, mountpoint string) (*LayerUsage, error) {
	s.mu.Lock()
	e := s.layers[id]
	if e != nil {
		u := e.usage
		if time.Since(u.At) >= layerTTL && !e.refreshing {
			s.once.Do(s.startWalker)
			select {
			case s.jobs <- layerJob{id, dir, mountpoint}:
				e.refreshing = true
			default: // walker busy: the next request asks again
			}
		}
		s.mu.Unlock()
		return &u, nil
	}
	s.mu.Unlock()
	u, err := walkLayer(dir, mountpoint)
	if err != nil || u == nil {
		return nil, err
	}
	s.mu.Lock()
	if s.layers == nil {
		s.layers = map[string]*layerEntry{}
	}
	s.layers[id] = &layerEntry{usage: *u}
	s.mu.Unlock()
	return u, nil
}

// startWalker starts the one goroutine that refreshes stale layer figures:
// one at a time, so walks never take more than a core between them.
func (s *statsCache) startWalker() {
	s.jobs = make(chan layerJob, 1024)
	go func() {
		for j := range s.jobs {
			u, err := walkLayer(j.dir, j.mountpoint)
			s.mu.Lock()
			if e := s.layers[j.id]; e != nil {
				e.refreshing = false
				switch {
				case err == nil && u != nil:
					e.usage = *u
				case err == nil:
					delete(s.layers, j.id) // upper dir gone
				}
			}
			s.mu.Unlock()
		}
	}()
}

// walkLayer sums the blocks and counts the inodes under an upper dir, hard
// links once, as containerd's snapshotters and ImageFsInfo count. A
// missing dir is no layer (nil, nil); files vanishing mid-walk are skipped.
func walkLayer(dir, mountpoint string) (*LayerUsage, error) {
	type inode struct{ dev, ino uint64 }
	var seen map[inode]bool
	u := &LayerUsage{Mountpoint: mountpoint}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return nil
		}
		if st.Nlink > 1 && !d.IsDir() {
			if seen == nil {
				seen = map[inode]bool{}
			}
			k := inode{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		u.Bytes += uint64(st.Blocks) * 512
		u.Inodes++
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("writable layer usage of %s: %w", dir, err)
	}
	u.At = time.Now()
	return u, nil
}
