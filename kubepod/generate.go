package kubepod

// Generate is Translate's inverse, for `husk pod generate`: from the CRI
// configs a pod was made from, the Pod that Translate turns into the same
// configs again. Translate loses what the CRI has no field for (a
// configMap volume's keys, port names...; probes and postStart come back
// from the record's Supervision), so not every Pod comes back; what does
// not is said in the notes.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"sigs.k8s.io/yaml"
)

// GenContainer is one container of a pod as it was created: its kind
// (init, sidecar or app, as LabelContainerKind; empty reads the config's
// label), the config of its first attempt, and its image as the manifest
// wrote it (empty: the config's).
type GenContainer struct {
	Kind   string
	Config *runtimeapi.ContainerConfig
	Image  string
	// Supervision is what the config does not hold (probes, postStart,
	// the termination message policy): husk pod run's record has it; nil
	// for a pod read off a runtime.
	Supervision *Supervision
}

// GenOptions are what Generate needs beside the configs. The first four
// are the Options the pod was translated with, which its configs depend
// on: without them the node's resolv.conf cannot be told from a
// dnsConfig, a memory request from none (oom_score_adj is its only
// trace), nor a Localhost seccomp profile's name from its path. The rest
// is what the runtime and husk pod run keep outside the configs.
type GenOptions struct {
	VolumeDir      string
	HostDNS        *runtimeapi.DNSConfig
	MemoryCapacity int64
	SeccompRoot    string
	// RuntimeHandler is the sandbox's handler (the CRI keeps it beside
	// the config), from spec.runtimeClassName.
	RuntimeHandler string
	// FSGroup is the group that owns the pod's volume dirs with the
	// set-group-ID bit, as husk pod run gives them the fsGroup; nil when
	// none does.
	FSGroup *int64
	// MemoryVolumes are the volumes under VolumeDir that are tmpfs mounts
	// (medium: Memory), each with its size in bytes when that is not the
	// kernel's default, else 0.
	MemoryVolumes map[string]int64
}

// generator is one Generate call: the configs, the Pod being built and
// the notes so far.
type generator struct {
	opts  GenOptions
	sb    *runtimeapi.PodSandboxConfig
	pod   *corev1.Pod
	psc   *corev1.PodSecurityContext
	notes []string
	// vols are the volumes by name (their index in pod.Spec.Volumes);
	// hostVols the hostPath volumes by host path; emptyDirs the names of
	// every volume under VolumeDir, which hostPath names must not take;
	// written the emptyDir volumes some container mounts read-write.
	vols      map[string]int
	hostVols  map[string]string
	emptyDirs map[string]bool
	written   map[string]bool
}

func (g *generator) note(format string, args ...any) {
	g.notes = append(g.notes, fmt.Sprintf(format, args...))
}

// Generate returns the Pod whose translation gives the sandbox config sb
// and the containers' configs (in the order they were created: init
// containers and sidecars first), with notes on what it cannot reproduce.
// Only configs it cannot read at all are an error.
func Generate(sb *runtimeapi.PodSandboxConfig, containers []GenContainer, opts GenOptions) (*corev1.Pod, []string, error) {
	md := sb.GetMetadata()
	if md.GetName() == "" {
		return nil, nil, fmt.Errorf("sandbox config: metadata.name: empty")
	}
	g := &generator{
		opts: opts, sb: sb, psc: &corev1.PodSecurityContext{},
		pod: &corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: md.Name, Namespace: md.Namespace},
		},
		vols: map[string]int{}, hostVols: map[string]string{}, emptyDirs: map[string]bool{}, written: map[string]bool{},
	}
	if opts.RuntimeHandler != "" {
		g.pod.Spec.RuntimeClassName = new(opts.RuntimeHandler)
	}
	g.metadata()
	g.namespaces()
	g.dns()
	g.podSecurity()
	for _, gc := range containers {
		for _, m := range gc.Config.GetMounts() {
			if name, _, ok := g.underVolumeDir(m.HostPath); ok {
				g.emptyDirs[name] = true
			}
		}
	}
	type built struct {
		c    *corev1.Container
		kind string
		cfg  *runtimeapi.ContainerConfig
	}
	var all []built
	for i, gc := range containers {
		c, kind, err := g.container(gc, i)
		if err != nil {
			return nil, nil, err
		}
		all = append(all, built{c, kind, gc.Config})
	}
	var ctrsBuilt []*corev1.Container
	for _, b := range all {
		ctrsBuilt = append(ctrsBuilt, b.c)
	}
	g.factorProfiles(ctrsBuilt)
	spec := &g.pod.Spec
	for _, b := range all {
		if b.c.SecurityContext != nil && *b.c.SecurityContext == (corev1.SecurityContext{}) {
			b.c.SecurityContext = nil
		}
		if b.kind == "app" {
			spec.Containers = append(spec.Containers, *b.c)
		} else {
			spec.InitContainers = append(spec.InitContainers, *b.c)
		}
	}
	if len(spec.Containers) == 0 {
		return nil, nil, fmt.Errorf("pod %s/%s: no app container among the configs", md.Namespace, md.Name)
	}
	g.ports()
	// Pointers into the pod's own slices, now that they are complete.
	var ctrs []*corev1.Container
	var cfgs []*runtimeapi.ContainerConfig
	ii, ai := 0, 0
	for _, b := range all {
		if b.kind == "app" {
			ctrs = append(ctrs, &spec.Containers[ai])
			ai++
		} else {
			ctrs = append(ctrs, &spec.InitContainers[ii])
			ii++
		}
		cfgs = append(cfgs, b.cfg)
	}
	g.memoryRequests(ctrs, cfgs)
	g.checkResources(ctrs, cfgs)
	g.privileged(ctrs)
	if !reflect.DeepEqual(*g.psc, corev1.PodSecurityContext{}) {
		spec.SecurityContext = g.psc
	}
	g.volumeNotes()
	return g.pod, g.notes, nil
}

// metadata is the pod's labels and annotations without husk's, and what
// husk's annotations hold: restartPolicy and the grace period.
func (g *generator) metadata() {
	sb, pod := g.sb, g.pod
	var kubelet []string
	for k, v := range sb.Labels {
		if k == LabelManaged {
			continue
		}
		// kubelet's own (a pod of kubelet's, read off the runtime): run
		// with them, the pod would be taken by a kubelet for its own and
		// removed.
		if strings.HasPrefix(k, "io.kubernetes.") {
			kubelet = append(kubelet, k)
			continue
		}
		if pod.Labels == nil {
			pod.Labels = map[string]string{}
		}
		pod.Labels[k] = v
	}
	for k, v := range sb.Annotations {
		if k == AnnotationGracePeriod || k == AnnotationRestartPolicy {
			continue
		}
		if strings.HasPrefix(k, "kubernetes.io/config.") {
			kubelet = append(kubelet, k)
			continue
		}
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[k] = v
	}
	if len(kubelet) > 0 {
		sort.Strings(kubelet)
		g.note("kubelet's labels and annotations %s are left out", strings.Join(kubelet, ", "))
	}
	if rp, ok := sb.Annotations[AnnotationRestartPolicy]; ok {
		switch p := corev1.RestartPolicy(rp); p {
		case corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
			pod.Spec.RestartPolicy = p
		default:
			g.note("annotation %s: unknown restart policy %q; restartPolicy left to its default, Always", AnnotationRestartPolicy, rp)
		}
	} else {
		g.note("the sandbox has no %s annotation: restartPolicy is left to its default, Always", AnnotationRestartPolicy)
	}
	if gp, ok := sb.Annotations[AnnotationGracePeriod]; ok {
		if v, err := strconv.ParseInt(gp, 10, 64); err == nil && v >= 0 {
			pod.Spec.TerminationGracePeriodSeconds = new(v)
		} else {
			g.note("annotation %s: %q is not a number of seconds; terminationGracePeriodSeconds left to its default, 30", AnnotationGracePeriod, gp)
		}
	}
}

// namespaces reverses namespaceOptions and the hostname, which a pod in
// the node's network namespace does not get.
func (g *generator) namespaces() {
	spec := &g.pod.Spec
	sc := g.sb.GetLinux().GetSecurityContext()
	ns := sc.GetNamespaceOptions()
	if ns == nil {
		g.note("the sandbox config has no namespace options: the pod gets its own network, IPC and PID namespaces")
	} else {
		switch ns.Network {
		case runtimeapi.NamespaceMode_POD:
		case runtimeapi.NamespaceMode_NODE:
			spec.HostNetwork = true
		default:
			g.note("network namespace mode %s cannot be asked for by a Pod; the pod gets its own", ns.Network)
		}
		switch ns.Pid {
		case runtimeapi.NamespaceMode_CONTAINER:
		case runtimeapi.NamespaceMode_POD:
			spec.ShareProcessNamespace = new(true)
		case runtimeapi.NamespaceMode_NODE:
			spec.HostPID = true
		default:
			g.note("PID namespace mode %s cannot be asked for by a Pod; each container gets its own", ns.Pid)
		}
		switch ns.Ipc {
		case runtimeapi.NamespaceMode_POD:
		case runtimeapi.NamespaceMode_NODE:
			spec.HostIPC = true
		default:
			g.note("IPC namespace mode %s cannot be asked for by a Pod; the pod gets its own", ns.Ipc)
		}
		if ns.TargetId != "" || ns.UsernsOptions != nil {
			g.note("the sandbox's target namespace and user namespace options are not reproduced (husk pod run sets neither)")
		}
	}
	h := g.sb.Hostname
	if spec.HostNetwork {
		if h != "" {
			g.note("hostname %q is not reproduced: a pod in the node's network namespace has the node's", h)
		}
		return
	}
	if h != hostname(g.pod) {
		spec.Hostname = h
		if hostname(g.pod) != h {
			g.note("hostname %q cannot be asked for by a Pod (Translate gives %q)", h, hostname(g.pod))
		}
	}
}

// dns picks the dnsPolicy and dnsConfig that Translate turns into the
// sandbox's DNS config on this node: Default (the node's resolv.conf),
// with what the pod added to it if anything, else None with the whole
// config written out. Each candidate is checked by translating it.
func (g *generator) dns() {
	want := g.sb.GetDnsConfig()
	if want == nil {
		want = &runtimeapi.DNSConfig{}
	}
	gives := func(policy corev1.DNSPolicy, cfg *corev1.PodDNSConfig) bool {
		t := &translator{pod: &corev1.Pod{Spec: corev1.PodSpec{DNSPolicy: policy, DNSConfig: cfg, HostNetwork: g.pod.Spec.HostNetwork}}}
		return proto.Equal(t.dnsConfig(g.opts.HostDNS), want)
	}
	type candidate struct {
		policy corev1.DNSPolicy
		cfg    *corev1.PodDNSConfig
	}
	var cands []candidate
	if host := g.opts.HostDNS; host != nil {
		cands = append(cands, candidate{corev1.DNSDefault, nil})
		extra := &corev1.PodDNSConfig{}
		for _, s := range want.Servers {
			if !slices.Contains(host.Servers, s) {
				extra.Nameservers = append(extra.Nameservers, s)
			}
		}
		for _, s := range want.Searches {
			if !slices.Contains(host.Searches, s) {
				extra.Searches = append(extra.Searches, s)
			}
		}
		for _, o := range want.Options {
			if !slices.Contains(host.Options, o) {
				extra.Options = append(extra.Options, dnsOption(o))
			}
		}
		cands = append(cands, candidate{corev1.DNSDefault, extra})
	}
	full := &corev1.PodDNSConfig{Nameservers: slices.Clone(want.Servers), Searches: slices.Clone(want.Searches)}
	for _, o := range want.Options {
		full.Options = append(full.Options, dnsOption(o))
	}
	cands = append(cands, candidate{corev1.DNSNone, full})
	for _, c := range cands {
		if gives(c.policy, c.cfg) {
			g.pod.Spec.DNSPolicy, g.pod.Spec.DNSConfig = c.policy, c.cfg
			return
		}
	}
	g.pod.Spec.DNSPolicy, g.pod.Spec.DNSConfig = corev1.DNSNone, full
	g.note("the DNS config (servers %v, searches %v, options %v) cannot be reproduced exactly: repeated entries are merged", want.Servers, want.Searches, want.Options)
}

// dnsOption is a resolv.conf option ("ndots:2") as a dnsConfig option.
func dnsOption(o string) corev1.PodDNSConfigOption {
	name, value, ok := strings.Cut(o, ":")
	if !ok {
		return corev1.PodDNSConfigOption{Name: name}
	}
	return corev1.PodDNSConfigOption{Name: name, Value: new(value)}
}

// podSecurity reverses sandboxSecurityContext and the sysctls: what of
// the pod's securityContext the sandbox config holds.
func (g *generator) podSecurity() {
	linux := g.sb.GetLinux()
	sc := linux.GetSecurityContext()
	psc := g.psc
	if u := sc.GetRunAsUser(); u != nil {
		psc.RunAsUser = new(u.Value)
	}
	if gr := sc.GetRunAsGroup(); gr != nil {
		psc.RunAsGroup = new(gr.Value)
	}
	psc.SELinuxOptions = fromSELinux(sc.GetSelinuxOptions())
	// Translate puts the fsGroup first; only the volume dirs' group says
	// whether there was one (a pod without volumes runs the same either
	// way).
	groups := sc.GetSupplementalGroups()
	if fg := g.opts.FSGroup; fg != nil {
		if len(groups) > 0 && groups[0] == *fg {
			psc.FSGroup = new(*fg)
			groups = groups[1:]
		} else {
			g.note("the pod's volumes belong to group %d (an fsGroup), which its supplemental groups %v do not start with; fsGroup is not reproduced", *fg, sc.GetSupplementalGroups())
		}
	}
	if len(groups) > 0 {
		psc.SupplementalGroups = slices.Clone(groups)
	}
	if p := sc.GetSupplementalGroupsPolicy(); p != runtimeapi.SupplementalGroupsPolicy_Merge {
		psc.SupplementalGroupsPolicy = new(corev1.SupplementalGroupsPolicy(p.String()))
	}
	names := make([]string, 0, len(linux.GetSysctls()))
	for k := range linux.GetSysctls() {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		psc.Sysctls = append(psc.Sysctls, corev1.Sysctl{Name: k, Value: linux.Sysctls[k]})
	}
	if sc.GetReadonlyRootfs() {
		g.note("the sandbox's read-only root filesystem is not reproduced (a Pod cannot ask for it)")
	}
	if s := sc.GetSeccomp(); s != nil && s.ProfileType != runtimeapi.SecurityProfile_RuntimeDefault {
		g.note("the sandbox's seccomp profile %s is not reproduced: kubelet and Translate give every sandbox RuntimeDefault", s.ProfileType)
	}
	//nolint:staticcheck // the deprecated path is what older clients still send; noticed, not used
	if sc.GetApparmor() != nil || sc.GetSeccompProfilePath() != "" {
		g.note("the sandbox's own AppArmor and seccomp profile paths are not reproduced")
	}
	if linux.GetCgroupParent() != "" {
		g.note("cgroup parent %s is the runtime's or kubelet's choice; not reproduced", linux.CgroupParent)
	}
	if linux.GetOverhead() != nil || linux.GetResources() != nil {
		g.note("pod overhead and pod-level resources are not reproduced (husk pod run supports neither)")
	}
}

func fromSELinux(o *runtimeapi.SELinuxOption) *corev1.SELinuxOptions {
	if o == nil {
		return nil
	}
	return &corev1.SELinuxOptions{User: o.User, Role: o.Role, Type: o.Type, Level: o.Level}
}

// container reverses one container's config (Translate's container).
func (g *generator) container(gc GenContainer, i int) (*corev1.Container, string, error) {
	cfg := gc.Config
	name := cfg.GetMetadata().GetName()
	if name == "" {
		return nil, "", fmt.Errorf("config of container %d: metadata.name: empty", i)
	}
	image := gc.Image
	if image == "" {
		image = cfg.GetImage().GetUserSpecifiedImage()
	}
	if image == "" {
		image = cfg.GetImage().GetImage()
	}
	if image == "" {
		return nil, "", fmt.Errorf("config of container %s: image: empty", name)
	}
	kind := gc.Kind
	if kind == "" {
		kind = cfg.Labels[LabelContainerKind]
	}
	switch kind {
	case "":
		kind = "app"
	case "init", "sidecar", "app":
	default:
		return nil, "", fmt.Errorf("container %s: kind %q: want init, sidecar or app", name, kind)
	}
	c := &corev1.Container{
		Name:  name,
		Image: image,
		// The image is on the node: a new pull could get another.
		ImagePullPolicy: corev1.PullIfNotPresent,
		WorkingDir:      cfg.WorkingDir,
		Stdin:           cfg.Stdin,
		StdinOnce:       cfg.StdinOnce,
		TTY:             cfg.Tty,
	}
	if kind == "sidecar" {
		c.RestartPolicy = new(corev1.ContainerRestartPolicyAlways)
	}
	uid := g.sb.GetMetadata().GetUid()
	oldUID := false
	for _, s := range cfg.Command {
		c.Command = append(c.Command, escapeRefs(s))
		oldUID = oldUID || uid != "" && strings.Contains(s, uid)
	}
	for _, s := range cfg.Args {
		c.Args = append(c.Args, escapeRefs(s))
		oldUID = oldUID || uid != "" && strings.Contains(s, uid)
	}
	for _, kv := range cfg.Envs {
		v := string(kv.Value)
		if !utf8.ValidString(v) {
			g.note("container %s: env %s is not UTF-8 and cannot be written in a manifest as it is", name, kv.Key)
		}
		// Only the downward API's metadata.uid gives a variable the pod's
		// uid: kept as such, the pod run again gets its new uid there.
		if uid != "" && v == uid {
			c.Env = append(c.Env, corev1.EnvVar{Name: kv.Key, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.uid"}}})
			continue
		}
		oldUID = oldUID || uid != "" && strings.Contains(v, uid)
		c.Env = append(c.Env, corev1.EnvVar{Name: kv.Key, Value: escapeRefs(v)})
	}
	if oldUID {
		g.note("container %s: its command, args or env hold the pod's uid %s, which a pod run again does not have", name, uid)
	}
	var extra []string
	for k := range cfg.Labels {
		if k != LabelManaged && k != LabelContainerName && k != LabelContainerKind {
			extra = append(extra, k)
		}
	}
	for k, v := range cfg.Annotations {
		switch k {
		case AnnotationGracePeriod:
		case AnnotationPreStop:
			h := &Handler{}
			if err := json.Unmarshal([]byte(v), h); err != nil {
				g.note("container %s: annotation %s: %v; its preStop hook is not reproduced", name, k, err)
				continue
			}
			lh, err := lifecycleHandler(h)
			if err != nil {
				g.note("container %s: preStop hook: %v; not reproduced", name, err)
				continue
			}
			c.Lifecycle = &corev1.Lifecycle{PreStop: lh}
		default:
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		g.note("container %s: labels and annotations %s are not reproduced (a Pod has none per container)", name, strings.Join(extra, ", "))
	}
	for _, m := range cfg.Mounts {
		// Translate's termination message file, in the pod's state dir
		// beside the volumes (terminationLog).
		if g.opts.VolumeDir != "" && m.HostPath == filepath.Join(filepath.Dir(g.opts.VolumeDir), "containers", name, "termination-log") {
			if m.ContainerPath != corev1.TerminationMessagePathDefault {
				c.TerminationMessagePath = m.ContainerPath
			}
			continue
		}
		if vm, ok := g.mount(m, name); ok {
			c.VolumeMounts = append(c.VolumeMounts, vm)
		}
	}
	c.Resources = g.resources(name, cfg.GetLinux().GetResources())
	c.SecurityContext = g.security(name, cfg.GetLinux().GetSecurityContext())
	if sv := gc.Supervision; sv != nil {
		g.supervision(c, sv)
	}
	if len(cfg.Devices) > 0 || len(cfg.CDIDevices) > 0 {
		g.note("container %s: devices are not reproduced (husk pod run adds none)", name)
	}
	if cfg.StopSignal != runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
		g.note("container %s: stop signal %s is not reproduced (husk pod run sets none)", name, cfg.StopSignal)
	}
	return c, kind, nil
}

// supervision puts back what the supervisor runs of c: Translate's
// probe and hook, reversed.
func (g *generator) supervision(c *corev1.Container, sv *Supervision) {
	for _, pr := range []struct {
		kind string
		in   *Probe
		out  **corev1.Probe
	}{{"liveness", sv.Liveness, &c.LivenessProbe}, {"readiness", sv.Readiness, &c.ReadinessProbe}, {"startup", sv.Startup, &c.StartupProbe}} {
		if pr.in == nil {
			continue
		}
		p, err := probeOf(pr.in)
		if err != nil {
			g.note("container %s: %s probe: %v; not reproduced", c.Name, pr.kind, err)
			continue
		}
		*pr.out = p
	}
	if sv.PostStart != nil {
		lh, err := lifecycleHandler(sv.PostStart)
		if err != nil {
			g.note("container %s: postStart hook: %v; not reproduced", c.Name, err)
		} else {
			if c.Lifecycle == nil {
				c.Lifecycle = &corev1.Lifecycle{}
			}
			c.Lifecycle.PostStart = lh
		}
	}
	if sv.FallbackToLogs {
		c.TerminationMessagePolicy = corev1.TerminationMessageFallbackToLogsOnError
	}
}

// probeOf is the probe p was translated from (probe).
func probeOf(p *Probe) (*corev1.Probe, error) {
	out := &corev1.Probe{
		InitialDelaySeconds: int32(p.InitialDelay / time.Second), PeriodSeconds: int32(p.Period / time.Second),
		TimeoutSeconds: int32(p.Timeout / time.Second), FailureThreshold: p.FailureThreshold, SuccessThreshold: p.SuccessThreshold,
	}
	switch {
	case p.GRPC != nil:
		out.GRPC = &corev1.GRPCAction{Port: p.GRPC.Port}
		if p.GRPC.Service != "" {
			out.GRPC.Service = &p.GRPC.Service
		}
	case p.TCPPort != 0:
		out.TCPSocket = &corev1.TCPSocketAction{Port: intstr.FromInt32(p.TCPPort)}
	default:
		lh, err := lifecycleHandler(&p.Handler)
		if err != nil {
			return nil, err
		}
		if lh.Sleep != nil {
			return nil, fmt.Errorf("a probe has no sleep")
		}
		out.Exec, out.HTTPGet = lh.Exec, lh.HTTPGet
	}
	return out, nil
}

// escapeRefs writes s so that Translate's expansion of $(VAR) references
// gives s back: a $ before ( or $ is doubled, as $$ reads as $.
// Translate expanded the original's references already; written as they
// are, one left undefined would be expanded on the next run if defined
// then, and an escaped $$(VAR) would become a reference.
func escapeRefs(s string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteByte(s[i])
		if s[i] == '$' && i+1 < len(s) && (s[i+1] == '(' || s[i+1] == '$') {
			b.WriteByte('$')
		}
	}
	return b.String()
}

// lifecycleHandler is the hook a Handler was translated from (handler).
func lifecycleHandler(h *Handler) (*corev1.LifecycleHandler, error) {
	switch {
	case len(h.Exec) > 0:
		return &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: h.Exec}}, nil
	case h.HTTPGet != nil:
		a := &corev1.HTTPGetAction{Path: h.HTTPGet.Path, Port: intstr.FromInt32(h.HTTPGet.Port), Host: h.HTTPGet.Host,
			Scheme: corev1.URIScheme(strings.ToUpper(h.HTTPGet.Scheme))}
		names := make([]string, 0, len(h.HTTPGet.Headers))
		for n := range h.HTTPGet.Headers {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			a.HTTPHeaders = append(a.HTTPHeaders, corev1.HTTPHeader{Name: n, Value: h.HTTPGet.Headers[n]})
		}
		return &corev1.LifecycleHandler{HTTPGet: a}, nil
	case h.TCPPort != 0 || h.GRPC != nil:
		return nil, fmt.Errorf("a tcpSocket or grpc handler is no hook")
	case h.Sleep%time.Second != 0:
		return nil, fmt.Errorf("sleep of %s is not whole seconds", h.Sleep)
	}
	// A sleep, of 0 seconds when the handler is empty: what a sleep of 0
	// is translated to.
	return &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: int64(h.Sleep / time.Second)}}, nil
}

// underVolumeDir splits a host path under the pod's volume dir into the
// volume's name and the subPath in it.
func (g *generator) underVolumeDir(host string) (name, subPath string, ok bool) {
	if g.opts.VolumeDir == "" || host == "" {
		return "", "", false
	}
	rel, err := filepath.Rel(filepath.Clean(g.opts.VolumeDir), filepath.Clean(host))
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", "", false
	}
	name, subPath, _ = strings.Cut(rel, "/")
	return name, subPath, true
}

// mount reverses a mount into a volume mount, adding its volume: an
// emptyDir for a dir of the pod's volume dir, a hostPath otherwise.
func (g *generator) mount(m *runtimeapi.Mount, ctr string) (corev1.VolumeMount, bool) {
	vm := corev1.VolumeMount{MountPath: m.ContainerPath, ReadOnly: m.Readonly}
	if m.HostPath == "" {
		g.note("container %s: the mount at %s has no host path (an image volume?); not reproduced", ctr, m.ContainerPath)
		return vm, false
	}
	if name, sub, ok := g.underVolumeDir(m.HostPath); ok {
		vm.Name, vm.SubPath = name, sub
		if _, seen := g.vols[name]; !seen {
			src := corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
			if size, tmpfs := g.opts.MemoryVolumes[name]; tmpfs {
				src.EmptyDir.Medium = corev1.StorageMediumMemory
				if size > 0 {
					src.EmptyDir.SizeLimit = resource.NewQuantity(size, resource.BinarySI)
				}
			}
			g.addVolume(name, src)
		}
		if !m.Readonly {
			g.written[name] = true
		}
	} else {
		vm.Name = g.hostPathVolume(filepath.Clean(m.HostPath))
	}
	switch m.Propagation {
	case runtimeapi.MountPropagation_PROPAGATION_PRIVATE:
	case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
		vm.MountPropagation = new(corev1.MountPropagationHostToContainer)
	case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		vm.MountPropagation = new(corev1.MountPropagationBidirectional)
	default:
		g.note("container %s: mount propagation %s at %s is not reproduced", ctr, m.Propagation, m.ContainerPath)
	}
	if m.RecursiveReadOnly {
		vm.RecursiveReadOnly = new(corev1.RecursiveReadOnlyEnabled)
	}
	if m.SelinuxRelabel || len(m.UidMappings) > 0 || len(m.GidMappings) > 0 || m.Image != nil {
		g.note("container %s: the SELinux relabel, ID mappings and image of the mount at %s are not reproduced", ctr, m.ContainerPath)
	}
	return vm, true
}

func (g *generator) addVolume(name string, src corev1.VolumeSource) {
	g.vols[name] = len(g.pod.Spec.Volumes)
	g.pod.Spec.Volumes = append(g.pod.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: src})
}

// hostPathVolume names (and adds, the first time) the hostPath volume of
// a host path.
func (g *generator) hostPathVolume(p string) string {
	if name, ok := g.hostVols[p]; ok {
		return name
	}
	base := hostPathName(p)
	name := base
	for n := 2; g.emptyDirs[name] || g.hasVolume(name); n++ {
		suffix := "-" + strconv.Itoa(n)
		name = strings.TrimRight(base[:min(len(base), 63-len(suffix))], "-") + suffix
	}
	g.hostVols[p] = name
	g.addVolume(name, corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: p}})
	return name
}

func (g *generator) hasVolume(name string) bool {
	_, ok := g.vols[name]
	return ok
}

// hostPathName names a host path's volume as podman kube generate does:
// the path with dashes for its slashes, then "-host", as a DNS-1123 label.
func hostPathName(p string) string {
	const suffix = "-host"
	var b strings.Builder
	for _, r := range strings.ToLower(p) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	s := b.String()
	if len(s) > 63-len(suffix) {
		s = s[:63-len(suffix)]
	}
	s = strings.TrimRight(s, "-")
	if s == "" {
		s = "root"
	}
	return s + suffix
}

// volumeNotes says what the volumes lost: a configMap, secret or
// projected volume is an emptyDir now (such a volume is read-only in
// every container; its files are not in the configs), and a hostPath
// volume's type is not recorded anywhere.
func (g *generator) volumeNotes() {
	var hostPaths []string
	for _, v := range g.pod.Spec.Volumes {
		switch {
		case v.EmptyDir != nil && !g.written[v.Name]:
			g.note("volume %s is mounted read-only, as configMap, secret and projected volumes are: it is generated as an emptyDir, and the files of a ConfigMap or Secret in it are not reproduced", v.Name)
		case v.HostPath != nil:
			hostPaths = append(hostPaths, v.Name)
		}
	}
	if len(hostPaths) > 0 {
		g.note("the type of hostPath volumes (DirectoryOrCreate...) is not recorded; left unset for %s", strings.Join(hostPaths, ", "))
	}
}

// ports puts the sandbox's port mappings back on the first app
// container: the configs do not say which container declared each, and
// Translate reads them off every container in order.
func (g *generator) ports() {
	pms := g.sb.GetPortMappings()
	if len(pms) == 0 {
		return
	}
	c := &g.pod.Spec.Containers[0]
	for _, pm := range pms {
		c.Ports = append(c.Ports, corev1.ContainerPort{
			ContainerPort: pm.ContainerPort, HostPort: pm.HostPort, HostIP: pm.HostIp, Protocol: corev1.Protocol(pm.Protocol.String()),
		})
	}
	if len(g.pod.Spec.Containers) > 1 {
		g.note("the pod's ports are all on container %s: the configs do not say which container declared each", c.Name)
	}
}

// PodYAML renders a generated Pod as a manifest: YAML without the status
// and creationTimestamp that a Go Pod always carries, nor the empty
// resources of containers that have none.
func PodYAML(pod *corev1.Pod) ([]byte, error) {
	b, err := json.Marshal(pod)
	if err != nil {
		return nil, fmt.Errorf("encode pod %s: %w", pod.Name, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("encode pod %s: %w", pod.Name, err)
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	if spec, ok := m["spec"].(map[string]any); ok {
		for _, key := range []string{"initContainers", "containers"} {
			list, _ := spec[key].([]any)
			for _, c := range list {
				if cm, ok := c.(map[string]any); ok {
					if r, ok := cm["resources"].(map[string]any); ok && len(r) == 0 {
						delete(cm, "resources")
					}
				}
			}
		}
	}
	if b, err = json.Marshal(m); err != nil {
		return nil, fmt.Errorf("encode pod %s: %w", pod.Name, err)
	}
	if b, err = yaml.JSONToYAML(b); err != nil {
		return nil, fmt.Errorf("encode pod %s as YAML: %w", pod.Name, err)
	}
	return b, nil
}
