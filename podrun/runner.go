// Package podrun runs Kubernetes Pods (kubepod.Plan) through any CRI
// runtime the way kubelet would: host paths, images, the sandbox, init
// containers one by one to completion, then the app containers; and in the
// foreground supervises them (supervisor.go): restarts with kubelet's
// back-off, liveness probes, their logs. It is what `husk pod run` does.
package podrun

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"github.com/husk-runtime/husk/crilog"
	"github.com/husk-runtime/husk/kubepod"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Runner runs pods through a CRI runtime.
type Runner struct {
	Runtime Runtime
	Images  Images
	// Timeout bounds each CRI call; 0 leaves calls unbounded.
	Timeout  time.Duration
	StateDir string // the runner's own state: <StateDir>/pods/<uid>
	LogRoot  string // kubelet's /var/log/pods
	// Stdout gets the containers' logs; Stderr progress, warnings and
	// what the supervisor does.
	Stdout, Stderr io.Writer
}

func (r *Runner) podDir(uid string) string { return filepath.Join(r.StateDir, "pods", uid) }

func (r *Runner) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return criclient.CallContext(parent, r.Timeout)
}

func (r *Runner) containerStatus(ctx context.Context, id string) (*runtimeapi.ContainerStatus, error) {
	return criclient.ContainerStatusOf(ctx, r.Runtime, r.Timeout, id)
}

// Pod is a pod the runner started.
type Pod struct {
	Plan   *kubepod.Plan
	ID     string            // the sandbox
	images map[string]string // image as written → image ref from the pull
	ids    map[string]string // container name → ID of its first attempt
	ip     string            // for hooks; empty for host network
	began  time.Time         // when Start began: activeDeadlineSeconds counts from it, as kubelet's from the pod's startTime
}

func (p *Pod) String() string { return p.Plan.Namespace + "/" + p.Plan.Name }

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

// HostDNS is the resolv.conf kubelet would use for dnsPolicy Default: the
// node's, or systemd-resolved's upstream file when the node's only names a
// loopback stub that a pod's network namespace cannot reach.
func HostDNS() (*runtimeapi.DNSConfig, error) {
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

// Plan translates one Pod of the manifest and prints its warnings (once
// per workload: for its first replica).
func (r *Runner) Plan(src kubepod.Source, dns *runtimeapi.DNSConfig, several bool) (*kubepod.Plan, error) {
	pod := src.Pod.DeepCopy()
	if pod.Name == "" && pod.GenerateName != "" {
		pod.Name = pod.GenerateName + randomSuffix(5)
	}
	uid := newUID()
	plan, err := kubepod.Translate(pod, kubepod.Options{
		UID: uid, LogRoot: r.LogRoot, VolumeDir: filepath.Join(r.podDir(uid), "volumes"),
		HostDNS: dns, MemoryCapacity: memoryCapacity(),
		SeccompRoot: "/var/lib/kubelet/seccomp", SeccompRuntimeDefault: true,
		Objects: src.Objects,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.Origin, err)
	}
	plan.Origin = src.Origin
	if src.Replica > 0 {
		return plan, nil // its warnings are the first replica's
	}
	prefix := ""
	if several || src.Job != nil || src.Pod.GenerateName != "" {
		prefix = src.Origin + ": "
	}
	for _, w := range src.Warnings {
		fmt.Fprintf(r.Stderr, "warning: %s%s\n", prefix, w)
	}
	for _, w := range plan.Warnings {
		fmt.Fprintf(r.Stderr, "warning: %s%s\n", prefix, w.Under(src.FieldPrefix))
	}
	return plan, nil
}

// Start runs everything of a plan up to its app containers running. On
// failure what it made is removed again, unless keep. file is the
// manifest's absolute path (empty for stdin), kept for `husk pod down`.
func (r *Runner) Start(ctx context.Context, plan *kubepod.Plan, file string, keep bool) (_ *Pod, err error) {
	p := &Pod{Plan: plan, images: map[string]string{}, ids: map[string]string{}, began: time.Now()}
	if err := r.checkNameFree(ctx, plan); err != nil {
		return nil, err
	}
	rec, err := newRecord(plan, file)
	if err != nil {
		return nil, err
	}
	// The record comes first, so that `husk pod rm` finds every directory
	// even if this process dies half-way.
	if err := r.writeRecord(rec); err != nil {
		return nil, err
	}
	defer func() {
		if err == nil || keep {
			return
		}
		if p.ID != "" {
			if rerr := r.stopAndRemove(context.WithoutCancel(ctx), p.ID, 0); rerr != nil {
				fmt.Fprintf(r.Stderr, "husk: cleaning up pod %s: %v\n", p, rerr)
			}
		}
		if rerr := r.RemoveFiles(plan.UID); rerr != nil {
			fmt.Fprintf(r.Stderr, "husk: cleaning up pod %s: %v\n", p, rerr)
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

	cctx, cancel := r.ctx(ctx)
	resp, err := r.Runtime.RunPodSandbox(cctx, &runtimeapi.RunPodSandboxRequest{Config: plan.Sandbox, RuntimeHandler: plan.RuntimeHandler})
	cancel()
	if err != nil {
		return nil, criclient.Wrap(err, "run pod %s", p)
	}
	p.ID = resp.PodSandboxId
	p.ip = r.podIP(ctx, p.ID)
	rec.SandboxID = p.ID
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
			if m := terminationMessage(c, st); m != "" {
				msg += ": " + m
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
func (r *Runner) checkNameFree(ctx context.Context, plan *kubepod.Plan) error {
	cctx, cancel := r.ctx(ctx)
	defer cancel()
	resp, err := r.Runtime.ListPodSandbox(cctx, &runtimeapi.ListPodSandboxRequest{})
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

// ensureImage applies the container's imagePullPolicy and returns the
// image ref to create it from.
func (r *Runner) ensureImage(ctx context.Context, plan *kubepod.Plan, c kubepod.Container) (string, error) {
	if c.PullPolicy != corev1.PullAlways {
		cctx, cancel := r.ctx(ctx)
		st, err := r.Images.ImageStatus(cctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: c.Image}})
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
	fmt.Fprintf(r.Stderr, "pulling image %s\n", c.Image)
	cctx, cancel := r.ctx(ctx)
	defer cancel()
	resp, err := r.Images.PullImage(cctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: c.Image}, Auth: c.PullAuth, SandboxConfig: plan.Sandbox})
	if err != nil {
		return "", criclient.Wrap(err, "pull image %s (%s.image)", c.Image, c.Field)
	}
	return resp.ImageRef, nil
}

// createStart creates and starts restart number attempt of a container.
func (r *Runner) createStart(ctx context.Context, p *Pod, c kubepod.Container, attempt uint32) (string, error) {
	imageRef := p.images[c.Image]
	cfg := c.Config(attempt, imageRef)
	if err := os.MkdirAll(filepath.Join(p.Plan.Sandbox.LogDirectory, c.Name), 0o755); err != nil {
		return "", fmt.Errorf("create log dir of container %s: %w", c.Name, err)
	}
	if c.RunAsNonRoot {
		if err := r.checkNonRoot(ctx, c, imageRef); err != nil {
			return "", err
		}
	}
	if err := newTerminationLog(c.TerminationLog); err != nil {
		return "", fmt.Errorf("termination message file of container %s: %w", c.Name, err)
	}
	cctx, cancel := r.ctx(ctx)
	defer cancel()
	cr, err := r.Runtime.CreateContainer(cctx, &runtimeapi.CreateContainerRequest{PodSandboxId: p.ID, Config: cfg, SandboxConfig: p.Plan.Sandbox})
	if err != nil {
		return "", criclient.Wrap(err, "create container %s of pod %s", c.Name, p)
	}
	if _, err := r.Runtime.StartContainer(cctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		return cr.ContainerId, criclient.Wrap(err, "start container %s of pod %s", c.Name, p)
	}
	if c.PostStart != nil {
		r.postStart(ctx, p, c, cr.ContainerId)
	}
	return cr.ContainerId, nil
}

// postStart runs c's postStart hook as kubelet does, before anything
// else happens to the container; if it fails the container is killed
// (its preStop hook first) and its restart policy takes over. kubelet
// gives the hook no timeout; here it gets the pod's grace period, at
// least 30 s, so that a hook that hangs cannot hang the run.
func (r *Runner) postStart(ctx context.Context, p *Pod, c kubepod.Container, id string) {
	timeout := max(time.Duration(p.Plan.GracePeriod)*time.Second, 30*time.Second)
	err := r.runHandler(ctx, id, c.PostStart, p.ip, timeout)
	if err == nil {
		return
	}
	fmt.Fprintf(r.Stderr, "postStart hook of %s in pod %s failed: %v; killing the container (FailedPostStartHook)\n", c.Name, p, err)
	if err := r.stopContainer(ctx, id, c.Name, c.PreStop, p.ip, p.Plan.GracePeriod); err != nil && !criclient.IsNotFound(err) {
		fmt.Fprintf(r.Stderr, "husk: %v\n", err)
	}
}

// checkNonRoot is kubelet's verifyRunAsNonRoot for a container with
// runAsNonRoot and no runAsUser: the image's user decides.
func (r *Runner) checkNonRoot(ctx context.Context, c kubepod.Container, imageRef string) error {
	cctx, cancel := r.ctx(ctx)
	defer cancel()
	st, err := r.Images.ImageStatus(cctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: imageRef}})
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
func (r *Runner) waitExit(ctx context.Context, id string) (*runtimeapi.ContainerStatus, error) {
	for {
		st, err := r.containerStatus(ctx, id)
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

// StopPod stops a pod as kubelet does: each running container with the
// grace period, its preStop hook first, then the sandbox.
func (r *Runner) StopPod(ctx context.Context, id string, grace int64) error {
	cctx, cancel := context.WithTimeout(ctx, time.Duration(grace+minGracePeriod)*time.Second+r.Timeout)
	defer cancel()
	resp, err := r.Runtime.ListContainers(cctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: id}})
	if err != nil {
		return criclient.Wrap(err, "list containers of pod %s", criclient.ShortID(id))
	}
	errc := make(chan error, len(resp.Containers))
	n := 0
	podIP := ""
	for _, c := range resp.Containers {
		if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		preStop, err := kubepod.PreStop(c.Annotations)
		if err != nil {
			fmt.Fprintf(r.Stderr, "husk: container %s: %v; stopped without its preStop hook\n", c.GetMetadata().GetName(), err)
		}
		if preStop != nil && podIP == "" {
			podIP = r.podIP(ctx, id)
		}
		n++
		go func() {
			errc <- r.stopContainer(cctx, c.Id, c.GetMetadata().GetName(), preStop, podIP, grace)
		}()
	}
	var errs []error
	for range n {
		if err := <-errc; err != nil && !criclient.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	if _, err := r.Runtime.StopPodSandbox(cctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil && !criclient.IsNotFound(err) {
		errs = append(errs, criclient.Wrap(err, "stop pod %s", criclient.ShortID(id)))
	}
	return errors.Join(errs...)
}

func (r *Runner) stopAndRemove(ctx context.Context, id string, grace int64) error {
	if err := r.StopPod(ctx, id, grace); err != nil {
		return err
	}
	cctx, cancel := r.ctx(ctx)
	defer cancel()
	if _, err := r.Runtime.RemovePodSandbox(cctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil && !criclient.IsNotFound(err) {
		return criclient.Wrap(err, "remove pod %s", criclient.ShortID(id))
	}
	return nil
}

// GracePeriod is the termination grace period husk pod run recorded on a
// sandbox, or kubelet's default.
func GracePeriod(annotations map[string]string) int64 {
	if g, err := strconv.ParseInt(annotations[kubepod.AnnotationGracePeriod], 10, 64); err == nil && g >= 0 {
		return g
	}
	return 30
}
