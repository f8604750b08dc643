// Package podproc finds a pod's processes in the node's /proc: the CRI has
// no call that lists them, so the runtime's verbose status says which
// cgroups and main PIDs are the pod's and its containers', and every
// process in those cgroups is one of theirs (husk top).
package podproc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/husk-runtime/husk/criclient"
)

// infraName labels the pod's infra (pause) process in husk top.
const infraName = "(infra)"

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat:
// 100 on every Linux architecture Kubernetes runs on (the kernel scales
// its internal HZ to it for this interface).
const clockTicks = 100

// Owners tells which processes are a pod's, as the runtime describes
// the pod and its containers.
type Owners struct {
	// ids are the pod's and its containers' IDs, each naming what it
	// is: runtimes put them in cgroup paths (husk: <pod cgroup>/<id>;
	// containerd: /k8s.io/<id>, <parent>/<id>, or cri-containerd-<id>.scope).
	ids map[string]owner
	// podCgroup is the cgroup the pod's containers are under, when the
	// runtime says it (husk does); "" otherwise.
	podCgroup string
	// pids are the main processes the runtime reported: their cgroups
	// name the containers' cgroups for runtimes that use other names.
	pids map[int]owner
}

type owner struct {
	id, name string
}

// verboseInfo is what husk top reads from the verbose status of a pod or
// a container: husk's and containerd's "info" key both carry "pid";
// husk's pod info the pod cgroup; containerd's the OCI spec.
type verboseProcInfo struct {
	Pid         int    `json:"pid"`
	Cgroup      string `json:"cgroup"`
	RuntimeSpec *struct {
		Linux *struct {
			CgroupsPath string `json:"cgroupsPath"`
		} `json:"linux"`
	} `json:"runtimeSpec"`
}

func parseVerboseProcInfo(info map[string]string) verboseProcInfo {
	var v verboseProcInfo
	_ = json.Unmarshal([]byte(info["info"]), &v)
	return v
}

// Find asks the runtime which processes are pod's: the IDs, main PIDs
// and cgroup of the pod and its containers, from their verbose status.
func Find(ctx context.Context, c *criclient.Client, pod *runtimeapi.PodSandbox) (*Owners, error) {
	cctx, cancel := c.Ctx(ctx)
	defer cancel()
	o := &Owners{ids: map[string]owner{}, pids: map[int]owner{}}
	infra := owner{id: pod.Id, name: infraName}
	o.ids[pod.Id] = infra
	ps, err := c.Runtime.PodSandboxStatus(cctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod.Id, Verbose: true})
	if err != nil {
		return nil, criclient.Wrap(err, "status of pod %s", criclient.ShortID(pod.Id))
	}
	pi := parseVerboseProcInfo(ps.Info)
	if pi.Pid > 0 {
		o.pids[pi.Pid] = infra
	}
	o.podCgroup = pi.Cgroup
	cl, err := c.Runtime.ListContainers(cctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: pod.Id}})
	if err != nil {
		return nil, criclient.Wrap(err, "list containers of pod %s", criclient.ShortID(pod.Id))
	}
	for _, ct := range cl.Containers {
		ow := owner{id: ct.Id, name: ct.GetMetadata().GetName()}
		o.ids[ct.Id] = ow
		if ct.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		cs, err := c.Runtime.ContainerStatus(cctx, &runtimeapi.ContainerStatusRequest{ContainerId: ct.Id, Verbose: true})
		if err != nil {
			// It may have exited since the list: its processes, if any,
			// are still found by its ID.
			continue
		}
		if ci := parseVerboseProcInfo(cs.Info); ci.Pid > 0 {
			o.pids[ci.Pid] = ow
		}
	}
	return o, nil
}

// cgroupPaths reads /proc/<pid>/cgroup: one path per hierarchy (one line
// on cgroup v2, one per controller set on v1).
func cgroupPaths(data []byte) []string {
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && parts[2] != "" {
			out = append(out, parts[2])
		}
	}
	return out
}

// match says whose process a cgroup makes it: the deepest path component
// naming one of the IDs (a container's cgroup is inside the pod's, and
// husk names the infra's after the pod), else a cgroup a reported main
// process is in, else anything under the pod's cgroup.
func (o *Owners) match(paths []string, pidCgroups map[string]owner) (owner, bool) {
	for _, p := range paths {
		segs := strings.Split(p, "/")
		for i := len(segs) - 1; i >= 0; i-- {
			for id, ow := range o.ids {
				if strings.Contains(segs[i], id) {
					return ow, true
				}
			}
		}
	}
	for _, p := range paths {
		if ow, ok := pidCgroups[p]; ok && p != "/" {
			return ow, true
		}
	}
	if o.podCgroup != "" && o.podCgroup != "/" {
		for _, p := range paths {
			if p == o.podCgroup || strings.HasPrefix(p, o.podCgroup+"/") {
				return owner{name: "(pod)"}, true
			}
		}
	}
	return owner{}, false
}

// Process is one process of a pod, as husk top shows it.
type Process struct {
	Container   string  `json:"container"`
	ContainerID string  `json:"containerId,omitempty"`
	PID         int     `json:"pid"`
	PPID        int     `json:"ppid"`
	UID         int     `json:"uid"`
	User        string  `json:"user"`
	CPUSeconds  float64 `json:"cpuSeconds"`
	RSSBytes    uint64  `json:"rssBytes"`
	Command     string  `json:"command"`
}

// Processes walks procRoot (the node's /proc) for the pod's processes,
// sorted: the infra first, then containers by name, each one's by PID.
func Processes(procRoot string, o *Owners) ([]Process, error) {
	// The cgroups of the reported main processes, for runtimes whose
	// cgroup names carry no ID. Only those: a hierarchy where such a
	// process sits in a shared cgroup (a v1 name=systemd one left at the
	// runtime's service) must not pull in every process of that cgroup.
	pidCgroups := map[string]owner{}
	for pid, ow := range o.pids {
		data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
		if err != nil {
			continue
		}
		paths := cgroupPaths(data)
		if _, ok := o.match(paths, nil); ok {
			continue
		}
		for _, p := range paths {
			pidCgroups[p] = ow
		}
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", procRoot, err)
	}
	users := map[string]*passwdCache{}
	var out []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		data, err := os.ReadFile(filepath.Join(dir, "cgroup"))
		if err != nil {
			continue // gone since the listing
		}
		ow, ok := o.match(cgroupPaths(data), pidCgroups)
		if !ok {
			continue
		}
		p, err := readProcess(dir, pid)
		if err != nil {
			continue // gone since the listing
		}
		p.Container, p.ContainerID = ow.name, ow.id
		pc := users[ow.id]
		if pc == nil {
			pc = &passwdCache{}
			users[ow.id] = pc
		}
		p.User = pc.name(dir, p.UID)
		out = append(out, p)
	}
	sortProcesses(out)
	return out, nil
}

// sortProcesses puts the infra process first, then containers by name,
// each one's processes by PID.
func sortProcesses(ps []Process) {
	sort.Slice(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if (a.Container == infraName) != (b.Container == infraName) {
			return a.Container == infraName
		}
		if a.Container != b.Container {
			return a.Container < b.Container
		}
		return a.PID < b.PID
	})
}

// readProcess reads one /proc/<pid> directory.
func readProcess(dir string, pid int) (Process, error) {
	p := Process{PID: pid}
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return p, fmt.Errorf("read %s/stat: %w", dir, err)
	}
	comm, ppid, ticks, err := parseStat(stat)
	if err != nil {
		return p, fmt.Errorf("%s/stat: %w", dir, err)
	}
	p.PPID, p.CPUSeconds = ppid, float64(ticks)/clockTicks
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return p, fmt.Errorf("read %s/status: %w", dir, err)
	}
	p.UID, p.RSSBytes = parseStatus(status)
	cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
	p.Command = strings.TrimSpace(strings.ReplaceAll(string(bytes.TrimRight(cmdline, "\x00")), "\x00", " "))
	if p.Command == "" {
		// A zombie or a kernel thread has no command line: ps shows
		// its name in brackets.
		p.Command = "[" + comm + "]"
	}
	return p, nil
}

// parseStat reads the name, parent PID and user+system CPU ticks from
// /proc/<pid>/stat. The name is in parentheses and may contain spaces and
// parentheses itself, so fields are counted from the last ')'.
func parseStat(data []byte) (comm string, ppid int, ticks uint64, err error) {
	s := string(data)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", 0, 0, errors.New("no command name")
	}
	comm = s[open+1 : end]
	// Fields after the name: state(3) ppid(4) ... utime(14) stime(15).
	f := strings.Fields(s[end+1:])
	if len(f) < 13 {
		return "", 0, 0, fmt.Errorf("%d fields after the name, want at least 13", len(f))
	}
	if ppid, err = strconv.Atoi(f[1]); err != nil {
		return "", 0, 0, fmt.Errorf("ppid %q: %w", f[1], err)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return "", 0, 0, fmt.Errorf("cpu times: %w", err)
	}
	return comm, ppid, ut + st, nil
}

// parseStatus reads the effective UID (what ps shows as USER) and the
// resident set size from /proc/<pid>/status.
func parseStatus(data []byte) (uid int, rss uint64) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		f := strings.Fields(v)
		switch {
		case k == "Uid" && len(f) >= 2:
			uid, _ = strconv.Atoi(f[1])
		case k == "VmRSS" && len(f) >= 1:
			kb, _ := strconv.ParseUint(f[0], 10, 64)
			rss = kb * 1024
		}
	}
	return uid, rss
}

// passwdCache resolves UIDs with a container's own /etc/passwd, read
// once through the first of its processes seen.
type passwdCache struct {
	loaded bool
	names  map[int]string
}

func (c *passwdCache) name(procDir string, hostUID int) string {
	uid := inNamespace(procDir, hostUID)
	if !c.loaded {
		c.loaded = true
		if f, err := os.Open(filepath.Join(procDir, "root", "etc", "passwd")); err == nil {
			c.names = parsePasswd(io.LimitReader(f, 1<<20))
			f.Close()
		}
	}
	if n, ok := c.names[uid]; ok {
		return n
	}
	return strconv.Itoa(uid)
}

// inNamespace maps a UID as the node sees it to the UID inside the
// process's user namespace (the same without one).
func inNamespace(procDir string, hostUID int) int {
	data, err := os.ReadFile(filepath.Join(procDir, "uid_map"))
	if err != nil {
		return hostUID
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		inside, e1 := strconv.Atoi(f[0])
		outside, e2 := strconv.Atoi(f[1])
		count, e3 := strconv.ParseInt(f[2], 10, 64)
		if e1 != nil || e2 != nil || e3 != nil {
			continue
		}
		if hostUID >= outside && int64(hostUID) < int64(outside)+count {
			return hostUID - outside + inside
		}
	}
	return hostUID
}

func parsePasswd(r io.Reader) map[int]string {
	names := map[int]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 3 {
			continue
		}
		if uid, err := strconv.Atoi(f[2]); err == nil {
			if _, dup := names[uid]; !dup {
				names[uid] = f[0]
			}
		}
	}
	return names
}
