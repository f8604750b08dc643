package main

// Running a kubepod.Plan through the CRI, in kubelet's order: host paths,
// images, sandbox, init containers one by one to completion, then the app
// containers.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"github.com/husk-runtime/husk/crilog"
	"github.com/husk-runtime/husk/kubepod"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podRecord is what husk pod run keeps about a pod it started, at
// <state dir>/pods/<uid>/pod.json: enough for `husk pod rm` to remove the
// directories it made, which the runtime knows nothing of.
type podRecord struct {
	UID          string    `json:"uid"`
	Name         string    `json:"name"`
	Namespace    string    `json:"namespace"`
	SandboxID    string    `json:"sandboxId,omitempty"`
	LogDirectory string    `json:"logDirectory"`
	Source       string    `json:"source,omitempty"`
	Created      time.Time `json:"created"`
}

type podRunner struct {
	c        *criclient.Client
	stateDir string // the CLI's own state: <stateDir>/pods/<uid>
	logRoot  string // kubelet's /var/log/pods
	stderr   io.Writer
}

func (r *podRunner) podDir(uid string) string { return filepath.Join(r.stateDir, "pods", uid) }

// runningPod is a pod this process started.
type runningPod struct {
	plan   *kubepod.Plan
	id     string
	images map[string]string // image as written → image ref from the pull
	ids    map[string]string // container name → ID of its first attempt
	origin string
}

func (p *runningPod) String() string { return p.plan.Namespace + "/" + p.plan.Name }

func newUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func randomSuffix(n int) string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789" // the API server's generateName alphabet
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// hostDNS is the resolv.conf kubelet would use for dnsPolicy Default: the
// node's, or systemd-resolved's upstream file when the node's only names a
// loopback stub that a pod's network namespace cannot reach.
func hostDNS() (*runtimeapi.DNSConfig, error) {
	read := func(path string) (*runtimeapi.DNSConfig, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return kubepod.ParseResolvConf(f)
	}
	cfg, err := read("/etc/resolv.conf")
	if err != nil {
		return nil, fmt.Errorf("read the node's resolv.conf: %w", err)
	}
	if kubepod.OnlyLoopbackServers(cfg) {
		if up, err := read("/run/systemd/resolve/resolv.conf"); err == nil && len(up.Servers) > 0 {
			return up, nil
		}
	}
	return cfg, nil
}

func memoryCapacity() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) >= 2 && fl[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fl[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// plan translates one Pod of the manifest and prints its warnings.
func (r *podRunner) plan(src kubepod.Source, dns *runtimeapi.DNSConfig, several bool) (*kubepod.Plan, error) {
	pod := src.Pod.DeepCopy()
	if pod.Name == "" && pod.GenerateName != "" {
		pod.Name = pod.GenerateName + randomSuffix(5)
	}
	uid := newUID()
	plan, err := kubepod.Translate(pod, kubepod.Options{
		UID: uid, LogRoot: r.logRoot, VolumeDir: filepath.Join(r.podDir(uid), "volumes"),
		HostDNS: dns, MemoryCapacity: memoryCapacity(),
		SeccompRoot: "/var/lib/kubelet/seccomp", SeccompRuntimeDefault: true,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.Origin, err)
	}
	prefix := ""
	if several {
		prefix = "pod " + plan.Namespace + "/" + plan.Name + ": "
	}
	for _, w := range src.Warnings {
		fmt.Fprintf(r.stderr, "warning: %s%s\n", prefix, w)
	}
	for _, w := range plan.Warnings {
		fmt.Fprintf(r.stderr, "warning: %s%s\n", prefix, w.Under(src.FieldPrefix))
	}
	return plan, nil
}

func (r *podRunner) writeRecord(rec podRecord) error {
	dir := r.podDir(rec.UID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state dir of pod %s/%s: %w", rec.Namespace, rec.Name, err)
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".pod.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write record of pod %s/%s: %w", rec.Namespace, rec.Name, err)
	}
	return os.Rename(tmp, filepath.Join(dir, "pod.json"))
}

func (r *podRunner) readRecord(uid string) (*podRecord, error) {
	b, err := os.ReadFile(filepath.Join(r.podDir(uid), "pod.json"))
	if err != nil {
		return nil, err
	}
	var rec podRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("record of pod %s: %w", uid, err)
	}
	return &rec, nil
}

// removeFiles removes what husk pod run made for a pod outside the
// runtime: its state dir (emptyDir volumes included) and its log dir.
func (r *podRunner) removeFiles(uid string) error {
	if uid == "" || strings.ContainsAny(uid, "/") || uid == "." || uid == ".." {
		return nil
	}
	rec, err := r.readRecord(uid)
	if errors.Is(err, os.ErrNotExist) {
		return nil // not a pod of husk pod run (or of another --state-dir)
	}
	var errs []error
	if err != nil {
		errs = append(errs, err)
	} else if rec.LogDirectory != "" && filepath.Base(rec.LogDirectory) == rec.Namespace+"_"+rec.Name+"_"+rec.UID {
		if err := os.RemoveAll(rec.LogDirectory); err != nil {
			errs = append(errs, fmt.Errorf("remove log dir of pod %s/%s: %w", rec.Namespace, rec.Name, err))
		}
	}
	// Memory emptyDirs are tmpfs mounts in there: unmounted first, or the
	// removal would fail on them and leave them mounted.
	if err := unmountUnder(r.podDir(uid)); err != nil {
		errs = append(errs, fmt.Errorf("remove state dir of pod %s: %w", uid, err))
	} else if err := os.RemoveAll(r.podDir(uid)); err != nil {
		errs = append(errs, fmt.Errorf("remove state dir of pod %s: %w", uid, err))
	}
	return errors.Join(errs...)
}

// mountMemoryDir mounts the tmpfs of a medium: Memory emptyDir on its dir,
// unless it is there already (a pod run again after a crash of the CLI).
func mountMemoryDir(hp kubepod.HostPath) error {
	if m, err := mountinfo.Mounted(hp.Path); err != nil {
		return fmt.Errorf("check %s: %w", hp.Path, err)
	} else if m {
		return nil
	}
	opts := "mode=0777"
	if hp.SizeLimit > 0 {
		opts += ",size=" + strconv.FormatInt(hp.SizeLimit, 10)
	}
	if err := unix.Mount("tmpfs", hp.Path, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", hp.Path, err)
	}
	return nil
}

// unmountUnder unmounts every mount at or below dir, deepest first.
func unmountUnder(dir string) error {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].Mountpoint) > len(mounts[j].Mountpoint) })
	for _, m := range mounts {
		if err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("unmount %s: %w", m.Mountpoint, err)
		}
	}
	return nil
}

// start runs everything of a plan up to its app containers running. On
// failure what it made is removed again, unless keep.
func (r *podRunner) start(ctx context.Context, plan *kubepod.Plan, origin string, keep bool) (_ *runningPod, err error) {
	p := &runningPod{plan: plan, images: map[string]string{}, ids: map[string]string{}, origin: origin}
	if err := r.checkNameFree(ctx, plan); err != nil {
		return nil, err
	}
	rec := podRecord{UID: plan.UID, Name: plan.Name, Namespace: plan.Namespace, LogDirectory: plan.Sandbox.LogDirectory, Source: origin, Created: time.Now()}
	// The record comes first, so that `husk pod rm` finds every directory
	// even if this process dies half-way.
	if err := r.writeRecord(rec); err != nil {
		return nil, err
	}
	defer func() {
		if err == nil || keep {
			return
		}
		if p.id != "" {
			if rerr := r.stopAndRemove(context.WithoutCancel(ctx), p.id, 0); rerr != nil {
				fmt.Fprintf(r.stderr, "husk: cleaning up pod %s: %v\n", p, rerr)
			}
		}
		if rerr := r.removeFiles(plan.UID); rerr != nil {
			fmt.Fprintf(r.stderr, "husk: cleaning up pod %s: %v\n", p, rerr)
		}
	}()
	if err := prepareHostPaths(plan); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(plan.Sandbox.LogDirectory, 0o755); err != nil {
		return nil, fmt.Errorf("create log dir of pod %s: %w", p, err)
	}
	for _, c := range append(append([]kubepod.Container{}, plan.InitContainers...), plan.Containers...) {
		if _, done := p.images[c.Image]; done {
			continue
		}
		ref, err := r.ensureImage(ctx, plan, c)
		if err != nil {
			return nil, err
		}
		p.images[c.Image] = ref
	}

	cctx, cancel := r.c.Ctx(ctx)
	resp, err := r.c.Runtime.RunPodSandbox(cctx, &runtimeapi.RunPodSandboxRequest{Config: plan.Sandbox, RuntimeHandler: plan.RuntimeHandler})
	cancel()
	if err != nil {
		return nil, criclient.Wrap(err, "run pod %s", p)
	}
	p.id = resp.PodSandboxId
	rec.SandboxID = p.id
	if err := r.writeRecord(rec); err != nil {
		return nil, err
	}

	for _, c := range plan.InitContainers {
		id, err := r.createStart(ctx, p, c, 0)
		if err != nil {
			return nil, err
		}
		p.ids[c.Name] = id
		if c.Sidecar {
			continue
		}
		st, err := r.waitExit(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("wait for init container %s of pod %s: %w", c.Name, p, err)
		}
		if st.ExitCode != 0 {
			msg := fmt.Sprintf("init container %s of pod %s failed: exit code %d", c.Name, p, st.ExitCode)
			if st.Reason != "" {
				msg += " (" + st.Reason + ")"
			}
			if t := strings.TrimRight(crilog.Tail(st.LogPath, 10), "\n"); t != "" {
				msg += "; its last log lines:\n" + t
			}
			return nil, errors.New(msg)
		}
	}
	for _, c := range plan.Containers {
		id, err := r.createStart(ctx, p, c, 0)
		if err != nil {
			return nil, err
		}
		p.ids[c.Name] = id
	}
	return p, nil
}

// checkNameFree refuses a second pod of the same namespace and name: names
// are how the other commands find pods.
func (r *podRunner) checkNameFree(ctx context.Context, plan *kubepod.Plan) error {
	cctx, cancel := r.c.Ctx(ctx)
	defer cancel()
	resp, err := r.c.Runtime.ListPodSandbox(cctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return criclient.Wrap(err, "list pods")
	}
	for _, s := range resp.Items {
		if s.GetMetadata().GetName() == plan.Name && s.GetMetadata().GetNamespace() == plan.Namespace {
			return fmt.Errorf("pod %s/%s already exists (%s, %s): remove it first with `husk pod rm %s`",
				plan.Namespace, plan.Name, criclient.ShortID(s.Id), strings.TrimPrefix(s.State.String(), "SANDBOX_"), criclient.ShortID(s.Id))
		}
	}
	return nil
}

// prepareHostPaths checks and creates host paths as kubelet's volume
// plugins do: emptyDir world-writable (owned by the fsGroup), hostPath
// checked against its type.
func prepareHostPaths(plan *kubepod.Plan) error {
	for _, hp := range plan.HostPaths {
		switch {
		case hp.EmptyDir:
			if err := os.MkdirAll(hp.Path, 0o777); err != nil {
				return fmt.Errorf("%s: create %s: %w", hp.Field, hp.Path, err)
			}
			if hp.Memory {
				if err := mountMemoryDir(hp); err != nil {
					return fmt.Errorf("%s: %w", hp.Field, err)
				}
			}
			mode := os.FileMode(0o777)
			if plan.FSGroup != nil {
				if err := os.Chown(hp.Path, -1, int(*plan.FSGroup)); err != nil {
					return fmt.Errorf("%s: give %s to fsGroup %d: %w", hp.Field, hp.Path, *plan.FSGroup, err)
				}
				mode |= os.ModeSetgid
			}
			// Chmod, not the umask-filtered mode of MkdirAll.
			if err := os.Chmod(hp.Path, mode); err != nil {
				return fmt.Errorf("%s: chmod %s: %w", hp.Field, hp.Path, err)
			}
		case hp.SubPath:
			if _, err := os.Lstat(hp.Path); errors.Is(err, os.ErrNotExist) {
				if err := os.MkdirAll(hp.Path, 0o750); err != nil {
					return fmt.Errorf("%s: create %s: %w", hp.Field, hp.Path, err)
				}
			}
		default:
			if err := checkHostPath(hp); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkHostPath(hp kubepod.HostPath) error {
	fi, err := os.Stat(hp.Path)
	if errors.Is(err, os.ErrNotExist) {
		switch hp.Type {
		case corev1.HostPathUnset:
			return nil // no check: the runtime creates a missing bind source dir
		case corev1.HostPathDirectoryOrCreate:
			if err := os.MkdirAll(hp.Path, 0o755); err != nil {
				return fmt.Errorf("%s: create %s: %w", hp.Field, hp.Path, err)
			}
			return nil
		case corev1.HostPathFileOrCreate:
			if err := os.MkdirAll(filepath.Dir(hp.Path), 0o755); err != nil {
				return fmt.Errorf("%s: create %s: %w", hp.Field, filepath.Dir(hp.Path), err)
			}
			f, err := os.OpenFile(hp.Path, os.O_CREATE|os.O_RDONLY, 0o644)
			if err != nil {
				return fmt.Errorf("%s: create %s: %w", hp.Field, hp.Path, err)
			}
			return f.Close()
		}
		return fmt.Errorf("%s: %s does not exist (type %s)", hp.Field, hp.Path, hp.Type)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", hp.Field, err)
	}
	var ok bool
	switch hp.Type {
	case corev1.HostPathUnset:
		ok = true
	case corev1.HostPathDirectory, corev1.HostPathDirectoryOrCreate:
		ok = fi.IsDir()
	case corev1.HostPathFile, corev1.HostPathFileOrCreate:
		ok = fi.Mode().IsRegular()
	case corev1.HostPathSocket:
		ok = fi.Mode()&os.ModeSocket != 0
	case corev1.HostPathCharDev:
		ok = fi.Mode()&os.ModeCharDevice != 0
	case corev1.HostPathBlockDev:
		ok = fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0
	}
	if !ok {
		return fmt.Errorf("%s: %s is not of type %s", hp.Field, hp.Path, hp.Type)
	}
	return nil
}

// ensureImage applies the container's imagePullPolicy and returns the
// image ref to create it from.
func (r *podRunner) ensureImage(ctx context.Context, plan *kubepod.Plan, c kubepod.Container) (string, error) {
	if c.PullPolicy != corev1.PullAlways {
		cctx, cancel := r.c.Ctx(ctx)
		st, err := r.c.Images.ImageStatus(cctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: c.Image}})
		cancel()
		if err != nil {
			return "", criclient.Wrap(err, "status of image %s", c.Image)
		}
		if st.Image != nil {
			return st.Image.Id, nil
		}
		if c.PullPolicy == corev1.PullNever {
			return "", fmt.Errorf("%s.image: %s is not present and imagePullPolicy is Never", c.Field, c.Image)
		}
	}
	fmt.Fprintf(r.stderr, "pulling image %s\n", c.Image)
	cctx, cancel := r.c.Ctx(ctx)
	defer cancel()
	resp, err := r.c.Images.PullImage(cctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: c.Image}, SandboxConfig: plan.Sandbox})
	if err != nil {
		return "", criclient.Wrap(err, "pull image %s (%s.image)", c.Image, c.Field)
	}
	return resp.ImageRef, nil
}

// createStart creates and starts restart number attempt of a container.
func (r *podRunner) createStart(ctx context.Context, p *runningPod, c kubepod.Container, attempt uint32) (string, error) {
	imageRef := p.images[c.Image]
	cfg := c.Config(attempt, imageRef)
	if err := os.MkdirAll(filepath.Join(p.plan.Sandbox.LogDirectory, c.Name), 0o755); err != nil {
		return "", fmt.Errorf("create log dir of container %s: %w", c.Name, err)
	}
	if c.RunAsNonRoot {
		if err := r.checkNonRoot(ctx, c, imageRef); err != nil {
			return "", err
		}
	}
	cctx, cancel := r.c.Ctx(ctx)
	defer cancel()
	cr, err := r.c.Runtime.CreateContainer(cctx, &runtimeapi.CreateContainerRequest{PodSandboxId: p.id, Config: cfg, SandboxConfig: p.plan.Sandbox})
	if err != nil {
		return "", criclient.Wrap(err, "create container %s of pod %s", c.Name, p)
	}
	if _, err := r.c.Runtime.StartContainer(cctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		return cr.ContainerId, criclient.Wrap(err, "start container %s of pod %s", c.Name, p)
	}
	return cr.ContainerId, nil
}

// checkNonRoot is kubelet's verifyRunAsNonRoot for a container with
// runAsNonRoot and no runAsUser: the image's user decides.
func (r *podRunner) checkNonRoot(ctx context.Context, c kubepod.Container, imageRef string) error {
	cctx, cancel := r.c.Ctx(ctx)
	defer cancel()
	st, err := r.c.Images.ImageStatus(cctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: imageRef}})
	if err != nil {
		return criclient.Wrap(err, "status of image %s", c.Image)
	}
	img := st.GetImage()
	switch {
	case img.GetUid() != nil && img.GetUid().GetValue() == 0:
		return fmt.Errorf("%s.securityContext.runAsNonRoot: image %s runs as root", c.Field, c.Image)
	case img.GetUid() == nil && img.GetUsername() != "":
		return fmt.Errorf("%s.securityContext.runAsNonRoot: image %s has a non-numeric user %q, which cannot be verified as non-root", c.Field, c.Image, img.GetUsername())
	case img.GetUid() == nil:
		return fmt.Errorf("%s.securityContext.runAsNonRoot: image %s runs as root (it names no user)", c.Field, c.Image)
	}
	return nil
}

// waitExit polls a container's status until it has exited.
func (r *podRunner) waitExit(ctx context.Context, id string) (*runtimeapi.ContainerStatus, error) {
	for {
		st, err := r.c.ContainerStatus(ctx, id)
		if err != nil {
			return nil, err
		}
		if st.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stopPod stops a pod as kubelet does: each running container with the
// grace period, then the sandbox.
func (r *podRunner) stopPod(ctx context.Context, id string, grace int64) error {
	cctx, cancel := context.WithTimeout(ctx, time.Duration(grace)*time.Second+r.c.Timeout)
	defer cancel()
	resp, err := r.c.Runtime.ListContainers(cctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: id}})
	if err != nil {
		return criclient.Wrap(err, "list containers of pod %s", criclient.ShortID(id))
	}
	errc := make(chan error, len(resp.Containers))
	n := 0
	for _, c := range resp.Containers {
		if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		n++
		go func() {
			_, err := r.c.Runtime.StopContainer(cctx, &runtimeapi.StopContainerRequest{ContainerId: c.Id, Timeout: grace})
			errc <- criclient.Wrap(err, "stop container %s (%s)", c.GetMetadata().GetName(), criclient.ShortID(c.Id))
		}()
	}
	var errs []error
	for range n {
		if err := <-errc; err != nil && !criclient.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	if _, err := r.c.Runtime.StopPodSandbox(cctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil && !criclient.IsNotFound(err) {
		errs = append(errs, criclient.Wrap(err, "stop pod %s", criclient.ShortID(id)))
	}
	return errors.Join(errs...)
}

func (r *podRunner) stopAndRemove(ctx context.Context, id string, grace int64) error {
	if err := r.stopPod(ctx, id, grace); err != nil {
		return err
	}
	cctx, cancel := r.c.Ctx(ctx)
	defer cancel()
	if _, err := r.c.Runtime.RemovePodSandbox(cctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil && !criclient.IsNotFound(err) {
		return criclient.Wrap(err, "remove pod %s", criclient.ShortID(id))
	}
	return nil
}

// gracePeriod is the termination grace period husk pod run recorded on a
// sandbox, or kubelet's default.
func gracePeriod(annotations map[string]string) int64 {
	if g, err := strconv.ParseInt(annotations[kubepod.AnnotationGracePeriod], 10, 64); err == nil && g >= 0 {
		return g
	}
	return 30
}
