package kubepod

import (
	"bytes"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The round trip: Translate(pod) → Generate → PodYAML → Decode →
// Translate must give the same configs, compared whole (proto.Equal), with
// the same Options (uid, paths). TestGenerateCoverage checks that the test
// pods set every field Translate can set, TestRoundTripCatchesLoss that
// the comparison sees a field the Pod loses.

// richPod has an init container, a sidecar and two app containers with
// most of what a Pod can say and Translate keeps.
const richPod = `
apiVersion: v1
kind: Pod
metadata:
  name: rich
  namespace: shop
  labels: {app: rich, tier: web}
  annotations: {team: payments, note: "uses $(NOTHING)"}
spec:
  hostname: rich-host
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 5
  dnsPolicy: Default
  dnsConfig:
    nameservers: [192.0.2.99]
    searches: [svc.example.org]
    options: [{name: ndots, value: "3"}, {name: edns0}]
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    fsGroup: 2000
    supplementalGroups: [4000, 5000]
    seccompProfile: {type: RuntimeDefault}
    sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "0"}, {name: kernel.shm_rmid_forced, value: "1"}]
  volumes:
  - {name: shared, emptyDir: {}}
  - {name: scratch, emptyDir: {medium: Memory, sizeLimit: 64Mi}}
  - {name: tmp, emptyDir: {medium: Memory}}
  - {name: settings, configMap: {name: settings}}
  - {name: logs, hostPath: {path: /srv/rich/logs, type: DirectoryOrCreate}}
  - {name: dev, hostPath: {path: /dev/fuse}}
  initContainers:
  - name: setup
    image: busybox:1.36
    command: [sh, -c, 'echo "$HOME" $(WHO) $$(WHO) > /shared/init; echo $$$$']
    env: [{name: WHO, value: setup}]
    volumeMounts: [{name: shared, mountPath: /shared}]
    resources:
      requests: {cpu: 100m, memory: 32Mi}
  - name: proxy
    image: registry.example/proxy:2
    restartPolicy: Always
    args: [--listen, ":15001"]
    volumeMounts:
    - {name: shared, mountPath: /etc/proxy, subPath: proxy/conf, readOnly: true}
    - {name: tmp, mountPath: /tmp}
    lifecycle:
      preStop: {exec: {command: [proxy, drain]}}
      postStart: {httpGet: {port: 15001, path: /up, httpHeaders: [{name: X-Check, value: "1"}]}}
    startupProbe: {tcpSocket: {port: 15001}, periodSeconds: 2, failureThreshold: 30}
    readinessProbe: {grpc: {port: 15002, service: proxy}, successThreshold: 2, timeoutSeconds: 3}
    livenessProbe: {exec: {command: [proxy, ping]}, initialDelaySeconds: 5}
    terminationMessagePolicy: FallbackToLogsOnError
    securityContext:
      runAsUser: 1337
      capabilities: {add: [NET_ADMIN, NET_RAW], drop: [ALL]}
  containers:
  - name: server
    image: registry.example/server@sha256:0000000000000000000000000000000000000000000000000000000000000000
    command: [server, "--port=$(PORT)"]
    args: ["$(UNDEFINED)", "$$(PORT)", "a$b", "$"]
    workingDir: /srv
    env:
    - {name: PORT, value: "8080"}
    - {name: URL, value: "http://localhost:$(PORT)/"}
    - {name: DOLLARS, value: "$$ $$$ $(PORT)$"}
    - name: POD_UID
      valueFrom: {fieldRef: {fieldPath: metadata.uid}}
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: LEVEL
      valueFrom: {configMapKeyRef: {name: settings, key: level}}
    ports:
    - {containerPort: 8080, hostPort: 31080}
    - {containerPort: 8443, hostPort: 31443, hostIP: 127.0.0.1, protocol: TCP}
    - {containerPort: 53, protocol: UDP}
    resources:
      requests: {cpu: 250m, memory: 64Mi}
      limits: {cpu: 500m, memory: 128Mi}
    volumeMounts:
    - {name: shared, mountPath: /shared}
    - {name: scratch, mountPath: /scratch}
    - {name: settings, mountPath: /etc/settings}
    - {name: logs, mountPath: /var/log/server, subPath: server, mountPropagation: HostToContainer}
    - {name: logs, mountPath: /logs, readOnly: true, recursiveReadOnly: Enabled}
    securityContext:
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}
    stdin: true
    stdinOnce: true
    tty: true
    lifecycle:
      preStop:
        httpGet: {path: /quit, port: 8080, scheme: HTTPS, host: localhost, httpHeaders: [{name: X-B, value: "2"}, {name: X-A, value: "1"}]}
  - name: worker
    image: busybox
    command: [sh, -c, "exec sleep 3600"]
    terminationMessagePath: /tmp/why
    ports: [{containerPort: 9090, protocol: SCTP}]
    resources:
      limits: {cpu: 1500m, memory: 256Mi}
    volumeMounts:
    - {name: dev, mountPath: /dev/fuse}
    - {name: shared, mountPath: /work, subPath: worker}
    lifecycle:
      preStop: {sleep: {seconds: 3}}
    securityContext:
      runAsGroup: 3001
      seLinuxOptions: {level: "s0:c1,c2"}
      capabilities: {}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {level: debug, app.conf: "x=1"}
`

// variantPods are the rest of what Translate can say, which one pod cannot
// (hostNetwork has no hostname, Guaranteed and Burstable...).
var variantPods = map[string]string{
	"host namespaces": `
kind: Pod
metadata: {name: hostns}
spec:
  hostNetwork: true
  hostPID: true
  hostIPC: true
  securityContext:
    seLinuxOptions: {user: system_u, role: system_r, type: spc_t, level: s0}
  containers:
  - name: agent
    image: busybox:1.36
    securityContext:
      privileged: true
      procMount: Unmasked
      seccompProfile: {type: Unconfined}
      appArmorProfile: {type: Localhost, localhostProfile: agent-profile}
      seLinuxOptions: {type: container_t}
  - name: side
    image: busybox:1.36
    securityContext:
      appArmorProfile: {type: RuntimeDefault}
`,
	"guaranteed, dns none, localhost seccomp": `
kind: Pod
metadata: {name: guaranteed, annotations: {a: b}}
spec:
  shareProcessNamespace: true
  runtimeClassName: kata
  restartPolicy: Never
  dnsPolicy: None
  dnsConfig:
    nameservers: [192.0.2.1, 192.0.2.2]
    searches: [a.example, b.example]
    options: [{name: ndots, value: "5"}, {name: rotate}]
  securityContext:
    supplementalGroups: [10]
    supplementalGroupsPolicy: Strict
    seccompProfile: {type: Localhost, localhostProfile: profiles/strict.json}
    appArmorProfile: {type: Unconfined}
  initContainers:
  - name: init
    image: busybox:1.36
    resources:
      limits: {cpu: "2", memory: 1Gi}
  containers:
  - name: app
    image: busybox:1.36
    resources:
      requests: {cpu: 5m, memory: 100Mi}
      limits: {cpu: 5m, memory: 100Mi}
`,
	"best effort": `
kind: Pod
metadata: {name: plain}
spec:
  containers:
  - {name: app, image: nginx}
`,
	"burstable edges": `
kind: Pod
metadata: {name: edges}
spec:
  dnsPolicy: ClusterFirst
  containers:
  - name: tiny
    image: busybox:1.36
    resources:
      requests: {cpu: 1m}
  - name: small-limit
    image: busybox:1.36
    resources:
      limits: {memory: 4Mi}
  - name: request-only
    image: busybox:1.36
    resources:
      requests: {memory: 1Gi, cpu: "300"}
  - name: request-below-limit
    image: busybox:1.36
    resources:
      requests: {memory: 1Mi, cpu: "0"}
      limits: {memory: 2Gi, cpu: 3m}
`,
	"name collisions and a long name": `
kind: Pod
metadata: {name: a-pod-with-a-name-that-is-much-longer-than-a-hostname-may-be-so-it-is-cut}
spec:
  volumes:
  - {name: data-host, emptyDir: {}}
  - {name: data, hostPath: {path: /data}}
  - {name: data2, hostPath: {path: /DATA}}
  - {name: root, hostPath: {path: /}}
  containers:
  - name: app
    image: busybox:1.36
    volumeMounts:
    - {name: data-host, mountPath: /a}
    - {name: data, mountPath: /b}
    - {name: data2, mountPath: /c}
    - {name: root, mountPath: /host, mountPropagation: Bidirectional}
    securityContext: {privileged: true}
`,
}

func genOpts() Options {
	o := opts()
	o.UID = "6b1f0e0e-3c5a-4f1e-9d57-0123456789ab"
	o.VolumeDir = "/var/lib/husk-cli/pods/" + o.UID + "/volumes"
	return o
}

// genOptions are what podrun finds for a plan: the Options, and on disk
// the fsGroup of its volume dirs and its tmpfs volumes.
func genOptions(o Options, p *Plan) GenOptions {
	g := GenOptions{VolumeDir: o.VolumeDir, HostDNS: o.HostDNS, MemoryCapacity: o.MemoryCapacity, SeccompRoot: o.SeccompRoot, RuntimeHandler: p.RuntimeHandler}
	for _, hp := range p.HostPaths {
		if !hp.EmptyDir {
			continue
		}
		g.FSGroup = p.FSGroup
		if hp.Memory {
			if g.MemoryVolumes == nil {
				g.MemoryVolumes = map[string]int64{}
			}
			g.MemoryVolumes[filepath.Base(hp.Path)] = hp.SizeLimit
		}
	}
	return g
}

// configsOf is what husk pod run records of a plan (podrun's newRecord).
func configsOf(p *Plan) []GenContainer {
	var out []GenContainer
	for _, c := range append(append([]Container{}, p.InitContainers...), p.Containers...) {
		cfg := c.Config(0, "")
		out = append(out, GenContainer{Kind: cfg.Labels[LabelContainerKind], Config: cfg, Image: c.Image, Supervision: c.Supervision()})
	}
	return out
}

func translateManifest(t *testing.T, manifest string, o Options) *Plan {
	t.Helper()
	srcs, _, err := Decode(strings.NewReader(manifest))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(srcs) != 1 {
		t.Fatalf("Decode: %d pods, want 1", len(srcs))
	}
	o.Objects = srcs[0].Objects
	p, err := Translate(srcs[0].Pod, o)
	if err != nil {
		t.Fatalf("Translate: %v", err)
	}
	return p
}

// generate generates the manifest of a plan, as husk pod generate
// writes it.
func generate(t *testing.T, p *Plan, o Options) (*corev1.Pod, []string, string) {
	t.Helper()
	pod, notes, err := Generate(p.Sandbox, configsOf(p), genOptions(o, p))
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	y, err := PodYAML(pod)
	if err != nil {
		t.Fatal(err)
	}
	return pod, notes, string(y)
}

// hostPathKeys are what of the HostPaths the configs can give back: not
// their fields, a hostPath volume's type, nor a configMap volume's files;
// and a subPath of a hostPath volume comes back as a hostPath volume of
// its own, which is made the same way when missing (its type unset).
func hostPathKeys(p *Plan, volumeDir string) []string {
	var out []string
	for _, hp := range p.HostPaths {
		sub := hp.SubPath && strings.HasPrefix(hp.Path, volumeDir+"/")
		out = append(out, fmt.Sprintf("%s emptyDir=%v memory=%v size=%d subPath=%v", hp.Path, hp.EmptyDir, hp.Memory, hp.SizeLimit, sub))
	}
	sort.Strings(out)
	return out
}

// diffPlans lists how b differs from a in everything a run of the plan
// uses, but the pull policy (IfNotPresent in a generated pod) and what
// hostPathKeys leaves out.
func diffPlans(a, b *Plan) []string {
	volumeDir := genOpts().VolumeDir
	var d []string
	if !proto.Equal(a.Sandbox, b.Sandbox) {
		d = append(d, fmt.Sprintf("sandbox:\n  got  %v\n  want %v", prototext.Format(b.Sandbox), prototext.Format(a.Sandbox)))
	}
	if a.Name != b.Name || a.Namespace != b.Namespace || a.UID != b.UID || a.RuntimeHandler != b.RuntimeHandler ||
		a.RestartPolicy != b.RestartPolicy || a.GracePeriod != b.GracePeriod || !reflect.DeepEqual(a.FSGroup, b.FSGroup) {
		d = append(d, fmt.Sprintf("plan: got %s/%s %s handler %q restart %s grace %d fsGroup %v, want %s/%s %s handler %q restart %s grace %d fsGroup %v",
			b.Namespace, b.Name, b.UID, b.RuntimeHandler, b.RestartPolicy, b.GracePeriod, b.FSGroup,
			a.Namespace, a.Name, a.UID, a.RuntimeHandler, a.RestartPolicy, a.GracePeriod, a.FSGroup))
	}
	if ka, kb := hostPathKeys(a, volumeDir), hostPathKeys(b, volumeDir); !reflect.DeepEqual(ka, kb) {
		d = append(d, fmt.Sprintf("host paths:\n  got  %q\n  want %q", kb, ka))
	}
	for _, l := range []struct {
		what string
		a, b []Container
	}{{"init container", a.InitContainers, b.InitContainers}, {"container", a.Containers, b.Containers}} {
		if len(l.a) != len(l.b) {
			d = append(d, fmt.Sprintf("%d %ss, want %d", len(l.b), l.what, len(l.a)))
			continue
		}
		for i := range l.a {
			ca, cb := l.a[i], l.b[i]
			if ca.Name != cb.Name || ca.Image != cb.Image || ca.Sidecar != cb.Sidecar || ca.RunAsNonRoot != cb.RunAsNonRoot ||
				!reflect.DeepEqual(ca.PreStop, cb.PreStop) || ca.TerminationLog != cb.TerminationLog || !reflect.DeepEqual(ca.Supervision(), cb.Supervision()) {
				d = append(d, fmt.Sprintf("%s %d: got %s %s sidecar %v preStop %+v termination log %s supervision %+v, want %s %s sidecar %v preStop %+v termination log %s supervision %+v",
					l.what, i, cb.Name, cb.Image, cb.Sidecar, cb.PreStop, cb.TerminationLog, cb.Supervision(), ca.Name, ca.Image, ca.Sidecar, ca.PreStop, ca.TerminationLog, ca.Supervision()))
			}
			if ga, gb := ca.Config(0, ""), cb.Config(0, ""); !proto.Equal(ga, gb) {
				d = append(d, fmt.Sprintf("%s %s config:\n  got  %v\n  want %v", l.what, ca.Name, prototext.Format(gb), prototext.Format(ga)))
			}
		}
	}
	return d
}

func roundTrip(t *testing.T, manifest string) (orig, again *Plan, gen *corev1.Pod, notes []string, y string) {
	t.Helper()
	o := genOpts()
	orig = translateManifest(t, manifest, o)
	gen, notes, y = generate(t, orig, o)
	again = translateManifest(t, y, o)
	for _, d := range diffPlans(orig, again) {
		t.Errorf("round trip: %s", d)
	}
	if t.Failed() {
		t.Logf("generated manifest:\n%s\nnotes:\n%s", y, strings.Join(notes, "\n"))
	}
	return orig, again, gen, notes, y
}

func TestGenerateRoundTrip(t *testing.T) {
	_, _, gen, notes, y := roundTrip(t, richPod)
	// What the notes must own up to.
	for _, want := range []string{
		"volume settings is mounted read-only",
		"the type of hostPath volumes",
		"the pod's ports are all on container server",
	} {
		if !strings.Contains(strings.Join(notes, "\n"), want) {
			t.Errorf("no note %q in:\n%s", want, strings.Join(notes, "\n"))
		}
	}
	// And what the generated Pod looks like where there was a choice.
	spec := gen.Spec
	if spec.DNSPolicy != corev1.DNSDefault || spec.DNSConfig == nil || len(spec.DNSConfig.Nameservers) != 1 {
		t.Errorf("dns: policy %s config %+v, want Default with the pod's additions", spec.DNSPolicy, spec.DNSConfig)
	}
	if spec.SecurityContext.FSGroup == nil || *spec.SecurityContext.FSGroup != 2000 || len(spec.SecurityContext.SupplementalGroups) != 2 {
		t.Errorf("pod security context %+v, want fsGroup 2000 and 2 supplemental groups", spec.SecurityContext)
	}
	if spec.SecurityContext.SeccompProfile == nil || spec.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod seccomp %+v, want RuntimeDefault once for the pod", spec.SecurityContext.SeccompProfile)
	}
	server := spec.Containers[0]
	if r := server.Resources.Requests[corev1.ResourceMemory]; r.String() != "64Mi" {
		t.Errorf("server memory request %s, want 64Mi back from its oom_score_adj", r.String())
	}
	if len(server.Env) < 4 || server.Env[3].ValueFrom == nil || server.Env[3].ValueFrom.FieldRef.FieldPath != "metadata.uid" {
		t.Errorf("POD_UID env %+v, want the downward API's metadata.uid", server.Env)
	}
	for _, want := range []string{"apiVersion: v1\n", "kind: Pod\n", "imagePullPolicy: IfNotPresent\n", "name: dev-fuse-host\n"} {
		if !strings.Contains(y, want) {
			t.Errorf("manifest lacks %q:\n%s", want, y)
		}
	}
	for _, unwanted := range []string{"status:", "creationTimestamp", "resources: {}", "cli.husk.io/"} {
		if strings.Contains(y, unwanted) {
			t.Errorf("manifest has %q:\n%s", unwanted, y)
		}
	}
}

func TestGenerateVariants(t *testing.T) {
	for name, manifest := range variantPods {
		t.Run(name, func(t *testing.T) { roundTrip(t, manifest) })
	}
}

// A generated manifest generates itself again: nothing drifts per round.
func TestGenerateIsAFixedPoint(t *testing.T) {
	for name, manifest := range mergeMaps(variantPods, map[string]string{"rich": richPod}) {
		t.Run(name, func(t *testing.T) {
			_, again, _, _, y1 := roundTrip(t, manifest)
			_, _, y2 := generate(t, again, genOpts())
			if y1 != y2 {
				t.Errorf("second generation differs:\n%s\nfirst:\n%s", y2, y1)
			}
		})
	}
}

func mergeMaps(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// TestRoundTripCatchesLoss checks the comparison itself: a generated Pod
// with any one thing dropped must not compare equal.
func TestRoundTripCatchesLoss(t *testing.T) {
	o := genOpts()
	orig := translateManifest(t, richPod, o)
	gen, _, _ := generate(t, orig, o)
	server := func(p *corev1.Pod) *corev1.Container { return &p.Spec.Containers[0] }
	losses := map[string]func(p *corev1.Pod){
		"label":         func(p *corev1.Pod) { delete(p.Labels, "tier") },
		"annotation":    func(p *corev1.Pod) { delete(p.Annotations, "team") },
		"hostname":      func(p *corev1.Pod) { p.Spec.Hostname = "" },
		"restartPolicy": func(p *corev1.Pod) { p.Spec.RestartPolicy = "" },
		"grace period":  func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = nil },
		"dns option":    func(p *corev1.Pod) { p.Spec.DNSConfig.Options = p.Spec.DNSConfig.Options[1:] },
		"dns policy":    func(p *corev1.Pod) { p.Spec.DNSPolicy = corev1.DNSNone },
		"sysctl":        func(p *corev1.Pod) { p.Spec.SecurityContext.Sysctls = p.Spec.SecurityContext.Sysctls[1:] },
		"fsGroup":       func(p *corev1.Pod) { p.Spec.SecurityContext.FSGroup = nil },
		"supplemental group": func(p *corev1.Pod) {
			p.Spec.SecurityContext.SupplementalGroups = p.Spec.SecurityContext.SupplementalGroups[1:]
		},
		"pod runAsUser": func(p *corev1.Pod) { p.Spec.SecurityContext.RunAsUser = nil },
		"pod seccomp": func(p *corev1.Pod) {
			p.Spec.SecurityContext.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
		},
		"sidecar": func(p *corev1.Pod) { p.Spec.InitContainers[1].RestartPolicy = nil },
		"container runAsUser": func(p *corev1.Pod) {
			p.Spec.InitContainers[1].SecurityContext.RunAsUser = nil
		},
		"command":          func(p *corev1.Pod) { server(p).Command = server(p).Command[:1] },
		"escaped args":     func(p *corev1.Pod) { server(p).Args[1] = "$(PORT)" },
		"workingDir":       func(p *corev1.Pod) { server(p).WorkingDir = "" },
		"env":              func(p *corev1.Pod) { server(p).Env = server(p).Env[1:] },
		"port":             func(p *corev1.Pod) { server(p).Ports = server(p).Ports[1:] },
		"hostIP":           func(p *corev1.Pod) { server(p).Ports[1].HostIP = "" },
		"tty":              func(p *corev1.Pod) { server(p).TTY = false },
		"stdinOnce":        func(p *corev1.Pod) { server(p).StdinOnce = false },
		"cpu request":      func(p *corev1.Pod) { server(p).Resources.Requests[corev1.ResourceCPU] = resource.MustParse("200m") },
		"cpu limit":        func(p *corev1.Pod) { delete(server(p).Resources.Limits, corev1.ResourceCPU) },
		"memory request":   func(p *corev1.Pod) { server(p).Resources.Requests[corev1.ResourceMemory] = resource.MustParse("256Mi") },
		"memory limit":     func(p *corev1.Pod) { delete(server(p).Resources.Limits, corev1.ResourceMemory) },
		"capability":       func(p *corev1.Pod) { server(p).SecurityContext.Capabilities.Add = nil },
		"readOnlyRoot":     func(p *corev1.Pod) { server(p).SecurityContext.ReadOnlyRootFilesystem = nil },
		"no_new_privs":     func(p *corev1.Pod) { server(p).SecurityContext.AllowPrivilegeEscalation = nil },
		"empty caps":       func(p *corev1.Pod) { p.Spec.Containers[1].SecurityContext.Capabilities = nil },
		"selinux":          func(p *corev1.Pod) { p.Spec.Containers[1].SecurityContext.SELinuxOptions = nil },
		"runAsGroup":       func(p *corev1.Pod) { p.Spec.Containers[1].SecurityContext.RunAsGroup = nil },
		"mount":            func(p *corev1.Pod) { server(p).VolumeMounts = server(p).VolumeMounts[1:] },
		"readOnly mount":   func(p *corev1.Pod) { server(p).VolumeMounts[4].ReadOnly = false },
		"recursive ro":     func(p *corev1.Pod) { server(p).VolumeMounts[4].RecursiveReadOnly = nil },
		"propagation":      func(p *corev1.Pod) { server(p).VolumeMounts[3].MountPropagation = nil },
		"subPath":          func(p *corev1.Pod) { p.Spec.InitContainers[1].VolumeMounts[0].SubPath = "proxy" },
		"memory medium":    func(p *corev1.Pod) { volumeNamed(p, "tmp").EmptyDir.Medium = "" },
		"size limit":       func(p *corev1.Pod) { volumeNamed(p, "scratch").EmptyDir.SizeLimit = nil },
		"preStop":          func(p *corev1.Pod) { server(p).Lifecycle = nil },
		"init container":   func(p *corev1.Pod) { p.Spec.InitContainers = p.Spec.InitContainers[1:] },
		"app container":    func(p *corev1.Pod) { p.Spec.Containers = p.Spec.Containers[:1] },
		"image":            func(p *corev1.Pod) { server(p).Image = "busybox" },
		"host namespace":   func(p *corev1.Pod) { p.Spec.HostIPC = true },
		"runtime class":    func(p *corev1.Pod) { p.Spec.RuntimeClassName = new("kata") },
		"share process ns": func(p *corev1.Pod) { p.Spec.ShareProcessNamespace = new(true) },
		"termination path": func(p *corev1.Pod) { p.Spec.Containers[1].TerminationMessagePath = "" },
	}
	if d := diffPlans(orig, translatePod(t, gen, o)); len(d) != 0 {
		t.Fatalf("the generated pod itself differs: %v", d)
	}
	for name, lose := range losses {
		p := gen.DeepCopy()
		lose(p)
		if d := diffPlans(orig, translatePod(t, p, o)); len(d) == 0 {
			t.Errorf("%s: dropped from the generated pod, and the round trip still compares equal", name)
		}
	}
}

func volumeNamed(p *corev1.Pod, name string) *corev1.Volume {
	for i := range p.Spec.Volumes {
		if p.Spec.Volumes[i].Name == name {
			return &p.Spec.Volumes[i]
		}
	}
	panic("no volume " + name)
}

func translatePod(t *testing.T, pod *corev1.Pod, o Options) *Plan {
	t.Helper()
	p, err := Translate(pod, o)
	if err != nil {
		t.Fatalf("Translate: %v", err)
	}
	return p
}

// neverSet are the fields of the sandbox and container configs Translate
// never sets (so Generate has nothing to reverse); TestGenerateCoverage
// fails on any other field that no test pod sets, so that a field
// Translate learns to set is added to a test pod, and round-tripped.
var neverSet = map[protoreflect.FullName]bool{
	"runtime.v1.PodSandboxMetadata.attempt":                         true,
	"runtime.v1.PodSandboxConfig.windows":                           true,
	"runtime.v1.LinuxPodSandboxConfig.cgroup_parent":                true,
	"runtime.v1.LinuxPodSandboxConfig.overhead":                     true,
	"runtime.v1.LinuxPodSandboxConfig.resources":                    true,
	"runtime.v1.LinuxSandboxSecurityContext.readonly_rootfs":        true,
	"runtime.v1.LinuxSandboxSecurityContext.apparmor":               true,
	"runtime.v1.LinuxSandboxSecurityContext.seccomp_profile_path":   true,
	"runtime.v1.NamespaceOption.target_id":                          true,
	"runtime.v1.NamespaceOption.userns_options":                     true,
	"runtime.v1.ContainerMetadata.attempt":                          true,
	"runtime.v1.ContainerConfig.devices":                            true,
	"runtime.v1.ContainerConfig.windows":                            true,
	"runtime.v1.ContainerConfig.CDI_devices":                        true,
	"runtime.v1.ContainerConfig.stop_signal":                        true,
	"runtime.v1.ImageSpec.annotations":                              true,
	"runtime.v1.ImageSpec.runtime_handler":                          true,
	"runtime.v1.ImageSpec.image_ref":                                true,
	"runtime.v1.Mount.selinux_relabel":                              true,
	"runtime.v1.Mount.uidMappings":                                  true,
	"runtime.v1.Mount.gidMappings":                                  true,
	"runtime.v1.Mount.image":                                        true,
	"runtime.v1.Mount.image_sub_path":                               true,
	"runtime.v1.Mount.mount_options":                                true,
	"runtime.v1.LinuxContainerResources.cpuset_cpus":                true,
	"runtime.v1.LinuxContainerResources.cpuset_mems":                true,
	"runtime.v1.LinuxContainerResources.hugepage_limits":            true,
	"runtime.v1.LinuxContainerResources.unified":                    true,
	"runtime.v1.LinuxContainerResources.memory_swap_limit_in_bytes": true,
	"runtime.v1.LinuxContainerSecurityContext.run_as_username":      true,
	"runtime.v1.LinuxContainerSecurityContext.apparmor_profile":     true,
	"runtime.v1.LinuxContainerSecurityContext.seccomp_profile_path": true,
	"runtime.v1.Capability.add_ambient_capabilities":                true,
}

func TestGenerateCoverage(t *testing.T) {
	set := map[protoreflect.FullName]bool{}
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			set[fd.FullName()] = true
			switch {
			case fd.IsList() && fd.Message() != nil:
				for i := 0; i < v.List().Len(); i++ {
					walk(v.List().Get(i).Message())
				}
			case fd.IsMap():
			case fd.Message() != nil:
				walk(v.Message())
			}
			return true
		})
	}
	o := genOpts()
	for _, manifest := range mergeMaps(variantPods, map[string]string{"rich": richPod}) {
		p := translateManifest(t, manifest, o)
		walk(p.Sandbox.ProtoReflect())
		for _, c := range configsOf(p) {
			walk(c.Config.ProtoReflect())
		}
	}
	// Every field reachable from the two configs is set by some pod, or
	// is one Translate never sets.
	seen := map[protoreflect.FullName]bool{}
	var all func(md protoreflect.MessageDescriptor)
	all = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		fields := md.Fields()
		for i := 0; i < fields.Len(); i++ {
			fd := fields.Get(i)
			name := fd.FullName()
			switch {
			case set[name] && neverSet[name]:
				t.Errorf("%s is set by Translate: remove it from neverSet", name)
			case !set[name] && !neverSet[name]:
				t.Errorf("%s is set by no test pod: add it to one (and to Generate) or to neverSet", name)
			}
			if fd.Message() != nil && !fd.IsMap() && !neverSet[name] {
				all(fd.Message())
			}
		}
	}
	all((&runtimeapi.PodSandboxConfig{}).ProtoReflect().Descriptor())
	all((&runtimeapi.ContainerConfig{}).ProtoReflect().Descriptor())
}

// escapeRefs is undone by Translate's expansion, whatever is defined.
func TestEscapeRefs(t *testing.T) {
	vars := map[string]string{"A": "x", "B": "$(A)"}
	for _, s := range []string{"", "plain", "$", "$$", "$$$", "$(A)", "$$(A)", "$(", "$(A", "a$b", "$A", "x$", "$($(A))", "$)", "$$(", "($A)$"} {
		if got := expand(escapeRefs(s), vars); got != s {
			t.Errorf("expand(escapeRefs(%q)) = %q (escaped %q)", s, got, escapeRefs(s))
		}
	}
}

// The cpu and memory of a container come back from the cgroup values
// Translate gives them, for every request and limit on a grid.
func TestGenerateResources(t *testing.T) {
	cpus := []string{"", "0", "1m", "2m", "3m", "5m", "9m", "10m", "11m", "99m", "100m", "101m", "250m", "333m", "999m", "1", "1500m", "255999m", "256", "300"}
	mems := []string{"", "0", "1", "1Ki", "1Mi", "4Mi", "8Mi", "9Mi", "17Mi", "64Mi", "100M", "128Mi", "1Gi", "7Gi", "8Gi", "9Gi"}
	const capacity = 8 << 30
	type pair struct{ req, lim string }
	var cpuPairs, memPairs []pair
	for _, r := range cpus {
		for _, l := range cpus {
			cpuPairs = append(cpuPairs, pair{r, l})
		}
	}
	for _, r := range mems {
		for _, l := range mems {
			memPairs = append(memPairs, pair{r, l})
		}
	}
	list := func(cpu, mem string) corev1.ResourceList {
		out := corev1.ResourceList{}
		if cpu != "" {
			out[corev1.ResourceCPU] = resource.MustParse(cpu)
		}
		if mem != "" {
			out[corev1.ResourceMemory] = resource.MustParse(mem)
		}
		return out
	}
	n := 0
	for _, cp := range cpuPairs {
		for _, mp := range memPairs {
			n++
			if n%7 != 0 { // a seventh of the 102400 pairs is plenty
				continue
			}
			pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{
				{Name: "a", Resources: corev1.ResourceRequirements{Requests: list(cp.req, mp.req), Limits: list(cp.lim, mp.lim)}},
			}}}
			for i := range pod.Spec.Containers {
				defaultRequests(&pod.Spec.Containers[i])
			}
			want := containerResources(pod, &pod.Spec.Containers[0], capacity)
			g := &generator{opts: GenOptions{MemoryCapacity: capacity}, sb: &runtimeapi.PodSandboxConfig{}, psc: &corev1.PodSecurityContext{}}
			gen := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Resources: g.resources("a", want)}}}}
			g.pod = gen
			g.memoryRequests([]*corev1.Container{&gen.Spec.Containers[0]}, []*runtimeapi.ContainerConfig{{Linux: &runtimeapi.LinuxContainerConfig{Resources: want}}})
			again := gen.DeepCopy()
			defaultRequests(&again.Spec.Containers[0])
			got := containerResources(again, &again.Spec.Containers[0], capacity)
			if !proto.Equal(got, want) {
				t.Errorf("cpu %s/%s memory %s/%s: %v, generated %v gives %v (notes %q)", cp.req, cp.lim, mp.req, mp.lim, want, gen.Spec.Containers[0].Resources, got, g.notes)
			}
		}
	}
}

// A pod that husk pod run did not record is refused with what is missing,
// not generated half.
func TestGenerateRefusesBadConfigs(t *testing.T) {
	p := translateManifest(t, variantPods["best effort"], genOpts())
	cfgs := configsOf(p)
	if _, _, err := Generate(&runtimeapi.PodSandboxConfig{}, cfgs, GenOptions{}); err == nil || !strings.Contains(err.Error(), "metadata.name") {
		t.Errorf("no sandbox name: %v", err)
	}
	cfgs[0].Kind = "init"
	if _, _, err := Generate(p.Sandbox, cfgs, GenOptions{}); err == nil || !strings.Contains(err.Error(), "no app container") {
		t.Errorf("no app container: %v", err)
	}
	noImage := proto.Clone(cfgs[0].Config).(*runtimeapi.ContainerConfig)
	noImage.Image = nil
	if _, _, err := Generate(p.Sandbox, []GenContainer{{Config: noImage}}, GenOptions{}); err == nil || !strings.Contains(err.Error(), "image") {
		t.Errorf("no image: %v", err)
	}
}

// A pod of kubelet's (configs read off containerd) loses kubelet's
// labels: with them, a kubelet would take the pod run again for its own.
func TestGenerateDropsKubeletLabels(t *testing.T) {
	p := translateManifest(t, variantPods["best effort"], genOpts())
	sb := proto.Clone(p.Sandbox).(*runtimeapi.PodSandboxConfig)
	sb.Labels["io.kubernetes.pod.uid"] = sb.Metadata.Uid
	sb.Labels["io.kubernetes.pod.name"] = sb.Metadata.Name
	sb.Annotations["kubernetes.io/config.seen"] = "2026-01-01T00:00:00Z"
	pod, notes, err := Generate(sb, configsOf(p), genOptions(genOpts(), p))
	if err != nil {
		t.Fatal(err)
	}
	if len(pod.Labels) != 0 || len(pod.Annotations) != 0 {
		t.Errorf("labels %v, annotations %v: want kubelet's left out", pod.Labels, pod.Annotations)
	}
	if !strings.Contains(strings.Join(notes, "\n"), "io.kubernetes.pod.name, io.kubernetes.pod.uid, kubernetes.io/config.seen") {
		t.Errorf("notes %q", notes)
	}
}

func TestPodYAMLDecodes(t *testing.T) {
	o := genOpts()
	p := translateManifest(t, richPod, o)
	_, _, y := generate(t, p, o)
	if !strings.HasPrefix(y, "apiVersion: v1\nkind: Pod\n") {
		t.Errorf("manifest does not start with apiVersion and kind:\n%s", y)
	}
	srcs, warns, err := Decode(bytes.NewReader([]byte(y)))
	if err != nil || len(srcs) != 1 {
		t.Fatalf("Decode: %v, %d pods", err, len(srcs))
	}
	for _, w := range warns {
		t.Errorf("decoding the generated manifest warns: %s", w)
	}
}
