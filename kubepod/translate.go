package kubepod

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Labels and annotations husk pod run puts on what it creates. They are
// not kubelet's io.kubernetes.* labels: a kubelet sharing the runtime would
// take pods carrying those for its own and garbage-collect them.
const (
	LabelManaged       = "cli.husk.io/managed" // "true" on sandboxes and containers of husk pod run
	LabelContainerName = "cli.husk.io/container"
	LabelContainerKind = "cli.husk.io/kind" // init, sidecar or app
	// AnnotationGracePeriod holds terminationGracePeriodSeconds, so that
	// `husk pod stop` honours it later.
	AnnotationGracePeriod = "cli.husk.io/termination-grace-period"
	// AnnotationRestartPolicy is the pod's restartPolicy, for `pod ls`.
	AnnotationRestartPolicy = "cli.husk.io/restart-policy"
	// AnnotationPreStop is a container's preStop hook (Handler as JSON):
	// whichever `husk pod stop`, `rm` or `down` stops the container runs
	// it first, as kubelet does.
	AnnotationPreStop = "cli.husk.io/pre-stop"
)

// Options are what kubelet knows about its node and husk pod run has to
// be told.
type Options struct {
	// UID is the pod's uid: generated per run, as the API server would.
	UID string
	// LogRoot is kubelet's pod log root (/var/log/pods).
	LogRoot string
	// VolumeDir holds the pod's emptyDir volumes, one directory each.
	VolumeDir string
	// HostDNS is the node's resolv.conf, for dnsPolicy Default and as
	// the fallback of ClusterFirst.
	HostDNS *runtimeapi.DNSConfig
	// MemoryCapacity is the node's memory in bytes, for oom_score_adj; 0
	// leaves oom_score_adj to the runtime.
	MemoryCapacity int64
	// SeccompRoot is where Localhost seccomp profiles are found (kubelet:
	// /var/lib/kubelet/seccomp).
	SeccompRoot string
	// SeccompRuntimeDefault gives containers without a seccompProfile the
	// runtime's default profile, as kubelet's seccompDefault: true does.
	SeccompRuntimeDefault bool
	// Objects are the manifest's ConfigMaps and Secrets (Source.Objects);
	// nil is none.
	Objects *Objects
}

// Plan is everything needed to run one Pod through the CRI.
type Plan struct {
	Name, Namespace, UID string
	// Origin is the manifest document the pod came from ("Pod/web",
	// "Deployment/web"), set by the caller.
	Origin         string
	Sandbox        *runtimeapi.PodSandboxConfig
	RuntimeHandler string
	// InitContainers run in order, each to completion (sidecars, with
	// restartPolicy Always, are started and left running).
	InitContainers []Container
	Containers     []Container
	// HostPaths must exist (or be created) before containers start.
	HostPaths     []HostPath
	RestartPolicy corev1.RestartPolicy
	// GracePeriod is terminationGracePeriodSeconds.
	GracePeriod int64
	// ActiveDeadline is activeDeadlineSeconds: how long after its start
	// the pod may run before its containers are stopped for good
	// (DeadlineExceeded); 0 is no deadline.
	ActiveDeadline time.Duration
	// FSGroup owns the pod's emptyDir volumes, as under kubelet.
	FSGroup  *int64
	Warnings []Warning
}

// Container is one container of the plan.
type Container struct {
	Name       string
	Image      string
	PullPolicy corev1.PullPolicy
	// Sidecar is an init container with restartPolicy Always.
	Sidecar bool
	// RunAsNonRoot asks the caller to check the image's user, as kubelet
	// does, when no runAsUser is given.
	RunAsNonRoot bool
	// Field is its path in the Pod, e.g. spec.initContainers[0].
	Field string
	// PullAuth are the credentials of the pod's imagePullSecrets for
	// the image; nil leaves them to the runtime.
	PullAuth *runtimeapi.AuthConfig
	// Liveness, Readiness and Startup are the probes the foreground
	// supervisor runs.
	Liveness, Readiness, Startup *Probe
	// PostStart runs right after the container starts, PreStop before it
	// is stopped (the latter also in AnnotationPreStop).
	PostStart, PreStop *Handler
	// TerminationLog is the host file mounted at terminationMessagePath,
	// made empty (0666, any user may write it) before each attempt, as
	// kubelet makes a new one per start; FallbackToLogs is the policy
	// FallbackToLogsOnError.
	TerminationLog string
	FallbackToLogs bool
	config         *runtimeapi.ContainerConfig
}

// Supervision is what of a container the CRI config does not hold and
// the foreground supervisor runs: its probes, postStart hook and
// termination message policy. husk pod run keeps it in the pod's record
// for `husk pod generate`.
type Supervision struct {
	Liveness       *Probe   `json:"liveness,omitempty"`
	Readiness      *Probe   `json:"readiness,omitempty"`
	Startup        *Probe   `json:"startup,omitempty"`
	PostStart      *Handler `json:"postStart,omitempty"`
	FallbackToLogs bool     `json:"fallbackToLogs,omitempty"`
}

// Supervision is c's; nil when it has none of it.
func (c Container) Supervision() *Supervision {
	s := Supervision{Liveness: c.Liveness, Readiness: c.Readiness, Startup: c.Startup, PostStart: c.PostStart, FallbackToLogs: c.FallbackToLogs}
	if s == (Supervision{}) {
		return nil
	}
	return &s
}

// Config returns the container's config for restart number attempt with
// the image resolved to imageRef (the image id the pull returned).
func (c Container) Config(attempt uint32, imageRef string) *runtimeapi.ContainerConfig {
	cfg := proto.Clone(c.config).(*runtimeapi.ContainerConfig)
	cfg.Metadata.Attempt = attempt
	cfg.LogPath = LogPath(c.Name, attempt)
	if imageRef != "" {
		cfg.Image.Image = imageRef
	}
	return cfg
}

// LogPath is kubelet's container log path, relative to the pod's log
// directory: <container>/<restart count>.log.
func LogPath(container string, attempt uint32) string {
	return filepath.Join(container, strconv.FormatUint(uint64(attempt), 10)+".log")
}

// HostPath is a host path a mount needs.
type HostPath struct {
	Field string // where the Pod asks for it
	Path  string
	// Type is a hostPath volume's type, checked (and for the *OrCreate
	// types created) as kubelet does. Unset for emptyDir and subPath dirs.
	Type corev1.HostPathType
	// EmptyDir is one of the pod's own emptyDir volumes: created
	// world-writable (group fsGroup), removed with the pod.
	EmptyDir bool
	// Memory makes the emptyDir a tmpfs (medium: Memory) of SizeLimit
	// bytes, or of the kernel's default size (half the RAM) when 0.
	Memory    bool
	SizeLimit int64
	// SubPath is a volume's subPath: created as a directory if missing.
	SubPath bool
	// Files are what a configMap, secret or projected volume holds,
	// written into the (emptyDir-like) dir before any container starts;
	// with Memory (any Secret in it) on a tmpfs, never on disk.
	Files []VolumeFile
}

// VolumeFile is one file of a configMap, secret or projected volume.
type VolumeFile struct {
	Path string // relative to the volume
	Data []byte
	Mode os.FileMode
}

// LogDirectory is kubelet's pod log directory.
func LogDirectory(root, namespace, name, uid string) string {
	return filepath.Join(root, namespace+"_"+name+"_"+uid)
}

// translator is one Translate call: the pod (a copy Translate may
// default), the options, the warnings so far, the plan being built and
// the pod's volumes, which every step of the translation reads.
type translator struct {
	pod  *corev1.Pod
	opts Options
	ws   warnings
	plan *Plan
	vols map[string]volume
	// keyring is the pod's imagePullSecrets (pullsecret.go).
	keyring pullKeyring
}

// Translate turns a Pod into the CRI configs kubelet would produce for it
// (kuberuntime_sandbox.go, kuberuntime_container*.go). What it cannot
// honour without a cluster is in Plan.Warnings; an invalid Pod is an
// error.
func Translate(in *corev1.Pod, opts Options) (*Plan, error) {
	pod := in.DeepCopy()
	t := &translator{pod: pod, opts: opts}
	if pod.Name == "" {
		return nil, fmt.Errorf("metadata.name: required")
	}
	if opts.UID == "" {
		return nil, fmt.Errorf("no uid for pod %s", pod.Name)
	}
	if pod.Namespace == "" {
		pod.Namespace = "default"
	}
	// The API server's rules, which also keep the log directory
	// (<namespace>_<name>_<uid>) one path element.
	if errs := validation.IsDNS1123Subdomain(pod.Name); len(errs) > 0 {
		return nil, fmt.Errorf("metadata.name: %q: %s", pod.Name, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Label(pod.Namespace); len(errs) > 0 {
		return nil, fmt.Errorf("metadata.namespace: %q: %s", pod.Namespace, strings.Join(errs, "; "))
	}
	if len(pod.Spec.Containers) == 0 {
		return nil, fmt.Errorf("spec.containers: a pod needs at least one container")
	}
	t.podWarnings()
	seen := map[string]string{}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		field := fmt.Sprintf("spec.initContainers[%d]", i)
		if err := checkContainer(c, field, seen); err != nil {
			return nil, err
		}
		t.resourceWarnings(c, field)
		defaultRequests(c)
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		field := fmt.Sprintf("spec.containers[%d]", i)
		if err := checkContainer(c, field, seen); err != nil {
			return nil, err
		}
		t.resourceWarnings(c, field)
		defaultRequests(c)
	}

	p := &Plan{Name: pod.Name, Namespace: pod.Namespace, UID: opts.UID, RestartPolicy: pod.Spec.RestartPolicy, GracePeriod: 30}
	t.plan = p
	if p.RestartPolicy == "" {
		p.RestartPolicy = corev1.RestartPolicyAlways
	}
	switch p.RestartPolicy {
	case corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
	default:
		return nil, fmt.Errorf("spec.restartPolicy: unknown value %q", p.RestartPolicy)
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		p.GracePeriod = *pod.Spec.TerminationGracePeriodSeconds
	}
	if d := pod.Spec.ActiveDeadlineSeconds; d != nil {
		if *d <= 0 {
			return nil, fmt.Errorf("spec.activeDeadlineSeconds: %d; it must be positive", *d)
		}
		p.ActiveDeadline = time.Duration(*d) * time.Second
	}
	if psc := pod.Spec.SecurityContext; psc != nil {
		p.FSGroup = psc.FSGroup
		// Every volume that takes the fsGroup (emptyDir, configMap,
		// secret, projected) is new with the pod here, so Always and
		// OnRootMismatch change the same: nothing to walk.
		if pol := psc.FSGroupChangePolicy; pol != nil && *pol != corev1.FSGroupChangeAlways && *pol != corev1.FSGroupChangeOnRootMismatch {
			return nil, fmt.Errorf("spec.securityContext.fsGroupChangePolicy: unknown policy %q", *pol)
		}
	}
	if pod.Spec.RuntimeClassName != nil && *pod.Spec.RuntimeClassName != "" {
		p.RuntimeHandler = *pod.Spec.RuntimeClassName
		t.ws.add("spec.runtimeClassName", "RuntimeClasses need a cluster; the name is used as the runtime handler")
	}

	sb, err := t.sandboxConfig()
	if err != nil {
		return nil, err
	}
	sb.Annotations[AnnotationGracePeriod] = strconv.FormatInt(p.GracePeriod, 10)
	sb.Annotations[AnnotationRestartPolicy] = string(p.RestartPolicy)
	p.Sandbox = sb

	if t.vols, err = t.volumes(); err != nil {
		return nil, err
	}
	t.keyring = t.pullKeyring()
	for i := range pod.Spec.InitContainers {
		c, err := t.container(&pod.Spec.InitContainers[i], fmt.Sprintf("spec.initContainers[%d]", i), true)
		if err != nil {
			return nil, err
		}
		p.InitContainers = append(p.InitContainers, c)
	}
	for i := range pod.Spec.Containers {
		c, err := t.container(&pod.Spec.Containers[i], fmt.Sprintf("spec.containers[%d]", i), false)
		if err != nil {
			return nil, err
		}
		p.Containers = append(p.Containers, c)
	}
	p.Warnings = t.ws
	return p, nil
}

func checkContainer(c *corev1.Container, field string, seen map[string]string) error {
	if c.Name == "" {
		return fmt.Errorf("%s.name: required", field)
	}
	// The API server's rule; it also keeps the name, which log and state
	// paths are joined from, a single path element.
	if errs := validation.IsDNS1123Label(c.Name); len(errs) > 0 {
		return fmt.Errorf("%s.name: %q: %s", field, c.Name, strings.Join(errs, "; "))
	}
	if prev, ok := seen[c.Name]; ok {
		return fmt.Errorf("%s.name: %q is also the name of %s", field, c.Name, prev)
	}
	seen[c.Name] = field
	if c.Image == "" {
		return fmt.Errorf("%s.image: required", field)
	}
	return nil
}

// podWarnings names the pod-level fields that need a cluster.
func (t *translator) podWarnings() {
	pod, ws := t.pod, &t.ws
	s := &pod.Spec
	if s.ServiceAccountName != "" || s.DeprecatedServiceAccount != "" {
		ws.add("spec.serviceAccountName", "service account tokens need a cluster; no token is mounted")
	}
	sched := map[string]bool{
		"spec.nodeName": s.NodeName != "", "spec.nodeSelector": len(s.NodeSelector) > 0, "spec.affinity": s.Affinity != nil,
		"spec.tolerations": len(s.Tolerations) > 0, "spec.topologySpreadConstraints": len(s.TopologySpreadConstraints) > 0,
		"spec.schedulerName": s.SchedulerName != "", "spec.priorityClassName": s.PriorityClassName != "",
		"spec.priority": s.Priority != nil, "spec.preemptionPolicy": s.PreemptionPolicy != nil, "spec.schedulingGates": len(s.SchedulingGates) > 0,
	}
	var fields []string
	for f, set := range sched {
		if set {
			fields = append(fields, f)
		}
	}
	sort.Strings(fields)
	for _, f := range fields {
		ws.add(f, "scheduling needs a cluster: the pod runs on this node; ignored")
	}
	if len(s.HostAliases) > 0 {
		ws.add("spec.hostAliases", "the runtime writes the pod's /etc/hosts; ignored")
	}
	if s.Subdomain != "" {
		ws.add("spec.subdomain", "needs a cluster's DNS; ignored")
	}
	if s.SetHostnameAsFQDN != nil && *s.SetHostnameAsFQDN {
		ws.add("spec.setHostnameAsFQDN", "needs a cluster domain; ignored")
	}
	if s.HostnameOverride != nil {
		ws.add("spec.hostnameOverride", "not supported; ignored")
	}
	if len(s.ReadinessGates) > 0 {
		ws.add("spec.readinessGates", "readiness needs a cluster; ignored")
	}
	if len(s.Overhead) > 0 {
		ws.add("spec.overhead", "pod overhead needs a cluster; ignored")
	}
	if s.Resources != nil {
		ws.add("spec.resources", "pod-level resources are not supported; ignored")
	}
	if s.HostUsers != nil && !*s.HostUsers {
		ws.add("spec.hostUsers", "user namespaces are not supported by husk pod run; the pod uses the host's user namespace")
	}
	if len(s.EphemeralContainers) > 0 {
		ws.add("spec.ephemeralContainers", "ephemeral containers are added by a cluster; ignored")
	}
	if len(s.ResourceClaims) > 0 {
		ws.add("spec.resourceClaims", "resource claims need a cluster; ignored")
	}
	if s.SchedulingGroup != nil {
		ws.add("spec.schedulingGroup", "scheduling groups need a cluster; ignored")
	}
}

// hostname is kubelet's GeneratePodHostNameAndDomain without a domain.
func hostname(pod *corev1.Pod) string {
	h := pod.Name
	if pod.Spec.Hostname != "" {
		h = pod.Spec.Hostname
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}

func (t *translator) sandboxConfig() (*runtimeapi.PodSandboxConfig, error) {
	pod, opts := t.pod, t.opts
	labels := map[string]string{}
	for k, v := range pod.Labels {
		labels[k] = v
	}
	labels[LabelManaged] = "true"
	annotations := map[string]string{}
	for k, v := range pod.Annotations {
		annotations[k] = v
	}
	sb := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: opts.UID},
		Labels:       labels,
		Annotations:  annotations,
		DnsConfig:    t.dnsConfig(opts.HostDNS),
		LogDirectory: LogDirectory(opts.LogRoot, pod.Namespace, pod.Name, opts.UID),
	}
	if !pod.Spec.HostNetwork {
		sb.Hostname = hostname(pod)
	}
	for i, c := range pod.Spec.Containers {
		for j, port := range c.Ports {
			field := fmt.Sprintf("spec.containers[%d].ports[%d]", i, j)
			if port.ContainerPort <= 0 || port.ContainerPort > 65535 {
				return nil, fmt.Errorf("%s.containerPort: %d is not a port", field, port.ContainerPort)
			}
			if port.HostPort < 0 || port.HostPort > 65535 {
				return nil, fmt.Errorf("%s.hostPort: %d is not a port", field, port.HostPort)
			}
			proto, err := protocol(port.Protocol, field)
			if err != nil {
				return nil, err
			}
			sb.PortMappings = append(sb.PortMappings, &runtimeapi.PortMapping{
				Protocol: proto, ContainerPort: port.ContainerPort, HostPort: port.HostPort, HostIp: port.HostIP,
			})
		}
	}
	sc, err := sandboxSecurityContext(pod)
	if err != nil {
		return nil, err
	}
	sysctls := map[string]string{}
	if psc := pod.Spec.SecurityContext; psc != nil {
		for _, s := range psc.Sysctls {
			sysctls[s.Name] = s.Value
		}
	}
	sb.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: sc, Sysctls: sysctls}
	return sb, nil
}

func protocol(p corev1.Protocol, field string) (runtimeapi.Protocol, error) {
	switch p {
	case "", corev1.ProtocolTCP:
		return runtimeapi.Protocol_TCP, nil
	case corev1.ProtocolUDP:
		return runtimeapi.Protocol_UDP, nil
	case corev1.ProtocolSCTP:
		return runtimeapi.Protocol_SCTP, nil
	}
	return 0, fmt.Errorf("%s.protocol: unknown protocol %q", field, p)
}

// volume is a pod volume as containers mount it: a host path, or nothing
// when the volume was skipped (with a warning).
type volume struct {
	hostPath string
	skipped  string // the warning's field, when skipped
	emptyDir bool
	readOnly bool // configMap, secret, projected: kubelet mounts them read-only
}

// unsupportedVolumes says why a volume type cannot be honoured.
var unsupportedVolumes = map[string]string{
	"persistentVolumeClaim": "PersistentVolumeClaims need a cluster; volume skipped",
	"downwardAPI":           "the downward API needs a cluster; volume skipped",
	"ephemeral":             "ephemeral volumes need a cluster's storage; volume skipped",
	"csi":                   "CSI volumes need a cluster's CSI drivers; volume skipped",
	"image":                 "image volumes are not supported by husk pod run yet; volume skipped",
}

func (t *translator) volumes() (map[string]volume, error) {
	pod, opts, ws, p := t.pod, t.opts, &t.ws, t.plan
	out := map[string]volume{}
	for i, v := range pod.Spec.Volumes {
		field := fmt.Sprintf("spec.volumes[%d]", i)
		if v.Name == "" {
			return nil, fmt.Errorf("%s.name: required", field)
		}
		if _, dup := out[v.Name]; dup {
			return nil, fmt.Errorf("%s.name: volume %q is defined twice", field, v.Name)
		}
		if strings.ContainsAny(v.Name, "/") || v.Name == "." || v.Name == ".." {
			return nil, fmt.Errorf("%s.name: %q is not a valid volume name", field, v.Name)
		}
		switch {
		case v.EmptyDir != nil:
			dir := filepath.Join(opts.VolumeDir, v.Name)
			hp := HostPath{Field: field + ".emptyDir", Path: dir, EmptyDir: true}
			switch v.EmptyDir.Medium {
			case corev1.StorageMediumMemory:
				// A tmpfs, as kubelet mounts one; its size is the limit.
				hp.Memory = true
				if v.EmptyDir.SizeLimit != nil {
					hp.SizeLimit = v.EmptyDir.SizeLimit.Value()
				}
			case corev1.StorageMediumDefault:
				if v.EmptyDir.SizeLimit != nil {
					ws.add(field+".emptyDir.sizeLimit", "not enforced on disk by husk pod run (kubelet evicts the pod); ignored")
				}
			default:
				ws.add(field+".emptyDir.medium", fmt.Sprintf("medium %q is not supported by husk pod run; the volume is a directory on disk", v.EmptyDir.Medium))
			}
			out[v.Name] = volume{hostPath: dir, emptyDir: true}
			p.HostPaths = append(p.HostPaths, hp)
		case v.ConfigMap != nil || v.Secret != nil || v.Projected != nil:
			files, secret, err := t.volumeFiles(v, field)
			if err != nil {
				return nil, err
			}
			dir := filepath.Join(opts.VolumeDir, v.Name)
			out[v.Name] = volume{hostPath: dir, emptyDir: true, readOnly: true}
			p.HostPaths = append(p.HostPaths, HostPath{Field: field, Path: dir, EmptyDir: true, Memory: secret, Files: files})
		case v.HostPath != nil:
			hp := v.HostPath.Path
			if !filepath.IsAbs(hp) {
				return nil, fmt.Errorf("%s.hostPath.path: %q is not an absolute path", field, hp)
			}
			var t corev1.HostPathType
			if v.HostPath.Type != nil {
				t = *v.HostPath.Type
			}
			switch t {
			case corev1.HostPathUnset, corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory, corev1.HostPathFileOrCreate,
				corev1.HostPathFile, corev1.HostPathSocket, corev1.HostPathCharDev, corev1.HostPathBlockDev:
			default:
				return nil, fmt.Errorf("%s.hostPath.type: unknown type %q", field, t)
			}
			out[v.Name] = volume{hostPath: filepath.Clean(hp)}
			p.HostPaths = append(p.HostPaths, HostPath{Field: field + ".hostPath", Path: filepath.Clean(hp), Type: t})
		default:
			kind := volumeKind(v.VolumeSource)
			msg, ok := unsupportedVolumes[kind]
			if !ok {
				msg = kind + " volumes need a cluster; volume skipped"
			}
			if kind == "" {
				kind, msg = "(source)", "no volume source given; volume skipped"
			}
			ws.add(field+"."+kind, msg)
			out[v.Name] = volume{skipped: field + "." + kind}
		}
	}
	return out, nil
}

// volumeKind is the name of the field set in a volume source, e.g. "secret".
func volumeKind(src corev1.VolumeSource) string {
	b, err := json.Marshal(src)
	if err != nil {
		return ""
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return ""
	}
	for k := range m {
		return k
	}
	return ""
}

func propagation(p *corev1.MountPropagationMode, field string) (runtimeapi.MountPropagation, error) {
	if p == nil {
		return runtimeapi.MountPropagation_PROPAGATION_PRIVATE, nil
	}
	switch *p {
	case corev1.MountPropagationNone:
		return runtimeapi.MountPropagation_PROPAGATION_PRIVATE, nil
	case corev1.MountPropagationHostToContainer:
		return runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER, nil
	case corev1.MountPropagationBidirectional:
		return runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL, nil
	}
	return 0, fmt.Errorf("%s.mountPropagation: unknown mode %q", field, *p)
}

// mounts translates c's volume mounts; vars are its env, for subPathExpr.
func (t *translator) mounts(c *corev1.Container, field string, vars map[string]string) ([]*runtimeapi.Mount, error) {
	vols, ws, p := t.vols, &t.ws, t.plan
	var out []*runtimeapi.Mount
	for j, vm := range c.VolumeMounts {
		mf := fmt.Sprintf("%s.volumeMounts[%d]", field, j)
		v, ok := vols[vm.Name]
		if !ok {
			return nil, fmt.Errorf("%s.name: no volume named %q in spec.volumes", mf, vm.Name)
		}
		if !path.IsAbs(vm.MountPath) {
			return nil, fmt.Errorf("%s.mountPath: %q is not an absolute path", mf, vm.MountPath)
		}
		if v.skipped != "" {
			ws.add(mf, fmt.Sprintf("volume %q was skipped (%s); not mounted at %s", vm.Name, v.skipped, vm.MountPath))
			continue
		}
		host := v.hostPath
		subPath, spField := vm.SubPath, mf+".subPath"
		if vm.SubPathExpr != "" {
			if vm.SubPath != "" {
				return nil, fmt.Errorf("%s.subPathExpr: subPath and subPathExpr are mutually exclusive", mf)
			}
			// Expanded from the container's env, as kubelet's
			// ExpandContainerVolumeMounts does (the downward API's
			// fields come in through env valueFrom).
			subPath, spField = expand(vm.SubPathExpr, vars), mf+".subPathExpr"
		}
		if subPath != "" {
			sp := filepath.Clean(subPath)
			if filepath.IsAbs(sp) || sp == ".." || strings.HasPrefix(sp, "../") {
				return nil, fmt.Errorf("%s: %q must be a relative path inside the volume", spField, subPath)
			}
			host = filepath.Join(host, sp)
			p.HostPaths = append(p.HostPaths, HostPath{Field: spField, Path: host, SubPath: true})
		}
		prop, err := propagation(vm.MountPropagation, mf)
		if err != nil {
			return nil, err
		}
		m := &runtimeapi.Mount{ContainerPath: vm.MountPath, HostPath: host, Readonly: vm.ReadOnly || v.readOnly, Propagation: prop}
		if vm.RecursiveReadOnly != nil && *vm.RecursiveReadOnly == corev1.RecursiveReadOnlyEnabled {
			m.RecursiveReadOnly = true
		}
		out = append(out, m)
	}
	return out, nil
}

func (t *translator) container(c *corev1.Container, field string, init bool) (Container, error) {
	pod, opts, ws, p := t.pod, t.opts, &t.ws, t.plan
	out := Container{Name: c.Name, Image: c.Image, PullPolicy: c.ImagePullPolicy, Field: field, PullAuth: t.keyring.lookup(c.Image)}
	if out.PullPolicy == "" {
		out.PullPolicy = defaultPullPolicy(c.Image)
	}
	switch out.PullPolicy {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		return out, fmt.Errorf("%s.imagePullPolicy: unknown policy %q", field, out.PullPolicy)
	}
	if c.RestartPolicy != nil {
		if init && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			out.Sidecar = true
		} else {
			ws.add(field+".restartPolicy", "per-container restart policies are only honoured for sidecars (init containers with Always); the pod's restartPolicy applies")
		}
	}
	if len(c.RestartPolicyRules) > 0 {
		ws.add(field+".restartPolicyRules", "not supported by husk pod run; the pod's restartPolicy applies")
	}
	for _, pr := range []struct {
		kind string
		in   *corev1.Probe
		out  **Probe
	}{{"liveness", c.LivenessProbe, &out.Liveness}, {"readiness", c.ReadinessProbe, &out.Readiness}, {"startup", c.StartupProbe, &out.Startup}} {
		if pr.in == nil {
			continue
		}
		f := field + "." + pr.kind + "Probe"
		if init && !out.Sidecar {
			ws.add(f, "init containers have no probes; ignored")
			continue
		}
		p, why := probe(c, pr.kind, pr.in)
		if p == nil {
			ws.add(f, why+"; ignored")
		}
		*pr.out = p
	}
	var preStop []byte
	if lc := c.Lifecycle; lc != nil {
		for _, h := range []struct {
			name string
			in   *corev1.LifecycleHandler
			out  **Handler
		}{{"postStart", lc.PostStart, &out.PostStart}, {"preStop", lc.PreStop, &out.PreStop}} {
			if h.in == nil {
				continue
			}
			f := field + ".lifecycle." + h.name
			if init && !out.Sidecar {
				ws.add(f, "init containers have no lifecycle hooks; ignored")
				continue
			}
			hd, why := hook(c, h.in)
			if hd == nil {
				ws.add(f, why+"; ignored")
			}
			*h.out = hd
		}
		if out.PreStop != nil {
			preStop, _ = json.Marshal(out.PreStop)
		}
	}
	if len(c.VolumeDevices) > 0 {
		ws.add(field+".volumeDevices", "block volumes need a cluster; ignored")
	}
	// envFrom first, in order, then env, which wins over it (as kubelet
	// builds the list). Env values may refer to the variables defined
	// before them; command and args to all of them.
	vars := map[string]string{}
	var envs []*runtimeapi.KeyValue
	set := func(name, v string) {
		if _, again := vars[name]; again {
			for _, kv := range envs {
				if kv.Key == name {
					kv.Value = []byte(v)
				}
			}
		} else {
			envs = append(envs, &runtimeapi.KeyValue{Key: name, Value: []byte(v)})
		}
		vars[name] = v
	}
	for j, ef := range c.EnvFrom {
		kvs, skipped, err := t.envFromSource(pod.Namespace, ef)
		if err != nil {
			return out, fmt.Errorf("%s.envFrom[%d]: %w", field, j, err)
		}
		if len(skipped) > 0 {
			ws.add(fmt.Sprintf("%s.envFrom[%d]", field, j), fmt.Sprintf("keys %s are not variable names; skipped", strings.Join(skipped, ", ")))
		}
		for _, kv := range kvs {
			set(kv[0], kv[1])
		}
	}
	for j, e := range c.Env {
		if e.Name == "" {
			return out, fmt.Errorf("%s.env[%d].name: required", field, j)
		}
		v := expand(e.Value, vars)
		switch src := e.ValueFrom; {
		case src != nil && (src.ConfigMapKeyRef != nil || src.SecretKeyRef != nil):
			var ok bool
			var err error
			if v, ok, err = t.keyRef(pod.Namespace, src); err != nil {
				return out, fmt.Errorf("%s.env[%d].valueFrom: %w", field, j, err)
			} else if !ok {
				continue // optional, and absent: not set, as kubelet
			}
		case src != nil:
			var ok bool
			var why string
			if v, ok, why = t.envFrom(c, src); !ok {
				ws.add(fmt.Sprintf("%s.env[%d].valueFrom", field, j), fmt.Sprintf("%s; variable %s is not set", why, e.Name))
				continue
			}
		}
		set(e.Name, v)
	}
	cmd := make([]string, len(c.Command))
	for j, s := range c.Command {
		cmd[j] = expand(s, vars)
	}
	args := make([]string, len(c.Args))
	for j, s := range c.Args {
		args[j] = expand(s, vars)
	}

	ms, err := t.mounts(c, field, vars)
	if err != nil {
		return out, err
	}
	if opts.VolumeDir != "" {
		tm, err := t.terminationLog(c, field, &out)
		if err != nil {
			return out, err
		}
		ms = append(ms, tm)
	}
	sc, err := t.containerSecurityContext(c, field)
	if err != nil {
		return out, err
	}
	eff := effectiveSecurityContext(pod, c)
	if eff.RunAsNonRoot != nil && *eff.RunAsNonRoot {
		if eff.RunAsUser != nil && *eff.RunAsUser == 0 {
			return out, fmt.Errorf("%s.securityContext: runAsNonRoot is set and runAsUser is 0", field)
		}
		out.RunAsNonRoot = eff.RunAsUser == nil
	}
	kind := "app"
	if init {
		kind = "init"
		if out.Sidecar {
			kind = "sidecar"
		}
	}
	out.config = &runtimeapi.ContainerConfig{
		Metadata:   &runtimeapi.ContainerMetadata{Name: c.Name},
		Image:      &runtimeapi.ImageSpec{Image: c.Image, UserSpecifiedImage: c.Image},
		Command:    cmd,
		Args:       args,
		WorkingDir: c.WorkingDir,
		Envs:       envs,
		Mounts:     ms,
		Labels:     map[string]string{LabelManaged: "true", LabelContainerName: c.Name, LabelContainerKind: kind},
		Annotations: map[string]string{
			AnnotationGracePeriod: strconv.FormatInt(p.GracePeriod, 10),
		},
		LogPath:   LogPath(c.Name, 0),
		Stdin:     c.Stdin,
		StdinOnce: c.StdinOnce,
		Tty:       c.TTY,
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       containerResources(pod, c, opts.MemoryCapacity),
			SecurityContext: sc,
		},
	}
	if preStop != nil {
		out.config.Annotations[AnnotationPreStop] = string(preStop)
	}
	return out, nil
}

// terminationLog is kubelet's termination message mount: a file of the
// pod's own at terminationMessagePath (default /dev/termination-log),
// which the container may write why it ended into.
func (t *translator) terminationLog(c *corev1.Container, field string, out *Container) (*runtimeapi.Mount, error) {
	tmPath := c.TerminationMessagePath
	if tmPath == "" {
		tmPath = corev1.TerminationMessagePathDefault
	}
	if !path.IsAbs(tmPath) {
		return nil, fmt.Errorf("%s.terminationMessagePath: %q is not an absolute path", field, tmPath)
	}
	switch c.TerminationMessagePolicy {
	case "", corev1.TerminationMessageReadFile:
	case corev1.TerminationMessageFallbackToLogsOnError:
		out.FallbackToLogs = true
	default:
		return nil, fmt.Errorf("%s.terminationMessagePolicy: unknown policy %q", field, c.TerminationMessagePolicy)
	}
	// Beside the volumes, in the pod's own state dir.
	out.TerminationLog = filepath.Join(filepath.Dir(t.opts.VolumeDir), "containers", c.Name, "termination-log")
	return &runtimeapi.Mount{ContainerPath: tmPath, HostPath: out.TerminationLog}, nil
}

// defaultPullPolicy is the API server's default: Always for :latest or an
// untagged image, IfNotPresent otherwise (a digest counts as a tag).
func defaultPullPolicy(image string) corev1.PullPolicy {
	if strings.Contains(image, "@") {
		return corev1.PullIfNotPresent
	}
	name := image
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	i := strings.LastIndex(name, ":")
	if i < 0 || name[i+1:] == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}
