package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/husk-runtime/husk/atomicfile"
	"github.com/husk-runtime/husk/layout"
	"github.com/husk-runtime/husk/shim"
)

// recover rebuilds the in-memory index from the records on disk and
// reconnects to the shims still running. Half-made pods and containers
// (state creating: the daemon died mid-way) are removed; so is everything a
// reboot left, which the boot id tells (/run is not a tmpfs everywhere).
func (m *Manager) recover(ctx context.Context) error {
	rebooted, err := m.checkBoot()
	if err != nil {
		return err
	}
	podsDir := m.paths.PodsDir()
	ents, err := os.ReadDir(podsDir)
	if err != nil {
		return fmt.Errorf("read %s: %w", podsDir, err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		id := e.Name()
		var p Pod
		if err := readRecord(filepath.Join(podsDir, id, "pod.json"), &p); errors.Is(err, fs.ErrNotExist) {
			// RunPodSandbox writes the record right after making the
			// dir: a dir without one is all a crash left of a pod.
			m.log.Warn("pod dir without a record; removing", "dir", filepath.Join(podsDir, id))
			// A pinned user namespace would make the removal fail (EBUSY).
			_ = removeUserns(filepath.Join(podsDir, id, "userns"))
			_ = os.RemoveAll(filepath.Join(podsDir, id))
			continue
		} else if err != nil {
			// A record that is there but garbage (a disk that lied, a
			// truncated file): what it named may still run, mounted
			// rootfs included, so nothing of it is touched. The pod is
			// left out and reported; husk doctor lists its dir and
			// --fix removes what is left of it.
			m.log.Error("pod record unreadable: the pod is not served and its dir is left for husk doctor",
				"pod", id, "error", err)
			m.unreadable = append(m.unreadable, fmt.Sprintf("pod %s: %v", id, err))
			continue
		}
		m.pods[p.ID] = &p
		m.names[podKey(p.Config.GetMetadata())] = p.ID
		m.loadContainers(&p)
		if rebooted && p.State != PodCreating {
			// Nothing of the pod runs any more; kubelet will remove it.
			p.State = PodNotReady
			for _, c := range m.podContainers(p.ID) {
				if c.State != ContainerExited && c.State != ContainerCreating {
					m.markShimDead(c)
				}
			}
		}
	}
	for _, p := range m.podsList() {
		if err := m.recoverPod(ctx, p); err != nil {
			m.log.Error("recover pod", "pod", p.ID, "error", err)
		}
	}
	return nil
}

func (m *Manager) podsList() []*Pod {
	out := make([]*Pod, 0, len(m.pods))
	for _, p := range m.pods {
		out = append(out, p)
	}
	return out
}

func (m *Manager) loadContainers(p *Pod) {
	dir := m.paths.ContainersDir(p.ID)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		var c Container
		if err := readRecord(filepath.Join(dir, e.Name(), "container.json"), &c); errors.Is(err, fs.ErrNotExist) {
			m.log.Warn("container dir without a record; removing", "dir", filepath.Join(dir, e.Name()))
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
			continue
		} else if err != nil {
			// As for a pod: its rootfs may be mounted and its process
			// running; it is left out, left as it is, and reported.
			m.log.Error("container record unreadable: the container is not served and its dir is left as it is",
				"pod", p.ID, "container", e.Name(), "error", err)
			m.unreadable = append(m.unreadable, fmt.Sprintf("container %s of pod %s: %v", e.Name(), p.ID, err))
			continue
		}
		m.ctrs[c.ID] = &c
		m.names[containerKey(p.ID, c.Config.GetMetadata())] = c.ID
		if c.State == ContainerExited {
			c.Exit = new(shim.ExitStatus)
			if err := atomicfile.ReadJSON(filepath.Join(dir, c.ID, "exit.json"), c.Exit); err != nil {
				c.Exit = nil
			}
		}
	}
}

func (m *Manager) recoverPod(ctx context.Context, p *Pod) error {
	if p.State == PodCreating {
		m.log.Info("removing pod left half-made by a crash", "pod", p.ID)
		m.rec.Recovered(RecoveredRemoved)
		return m.removePod(ctx, p)
	}
	shimAlive := m.shim(p).Version(ctx) == nil
	if !shimAlive {
		m.set(func() { p.shimDied = true })
	}
	defer func() {
		if shimAlive {
			m.rec.Recovered(RecoveredRunning)
		} else {
			m.rec.Recovered(RecoveredNotReady)
		}
	}()
	var inShim map[string]string // container id -> the shim's status
	if shimAlive {
		if cs, err := m.shim(p).State(ctx); err == nil {
			inShim = map[string]string{}
			for _, c := range cs {
				inShim[c.ID] = c.Status
			}
		}
	}
	for _, c := range m.podContainers(p.ID) {
		switch {
		case c.State == ContainerCreating:
			m.log.Info("removing container left half-made by a crash", "container", c.ID)
			if err := m.removeContainer(ctx, p, c); err != nil {
				return err
			}
		case !shimAlive:
			m.refreshContainer(c)
			if c.State != ContainerExited {
				m.markShimDead(c)
			}
		default:
			m.refreshContainer(c)
			// A crash between the shim starting a container and the record
			// saying so leaves it "created" on disk: the shim knows better.
			if c.State == ContainerCreated && inShim[c.ID] == shim.StatusRunning {
				m.log.Info("container was started just before a crash; recording it running", "container", c.ID)
				err := m.updateContainer(c, func() {
					c.State = ContainerRunning
					if c.StartedAt.IsZero() {
						c.StartedAt = time.Now().UTC() // the real start went unrecorded
					}
				})
				if err != nil {
					return err
				}
			}
		}
	}
	if shimAlive {
		m.watchShim(p)
		m.watchExits(p)
	}
	if !shimAlive && p.State == PodReady {
		m.log.Warn("shim of pod is gone; pod is NOTREADY", "pod", p.ID)
		return m.updatePod(p, func() { p.State = PodNotReady })
	}
	return nil
}

// checkBoot compares the kernel's boot id with the one recorded at the last
// start. A different one means a reboot: every process, mount and netns of
// the old boot is gone, though files under the state dir may not be.
func (m *Manager) checkBoot() (bool, error) {
	now, err := layout.BootID()
	if err != nil {
		return false, err
	}
	path := m.paths.BootIDFile()
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	if err := atomicfile.Write(path, []byte(now+"\n"), 0o600); err != nil {
		return false, err
	}
	return len(old) > 0 && strings.TrimSpace(string(old)) != now, nil
}
