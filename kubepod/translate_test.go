package kubepod

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func opts() Options {
	return Options{
		UID: "uid-1", LogRoot: "/var/log/pods", VolumeDir: "/var/lib/husk-cli/pods/uid-1/volumes",
		HostDNS:        &runtimeapi.DNSConfig{Servers: []string{"192.0.2.53"}, Searches: []string{"example.org"}, Options: []string{"ndots:1"}},
		MemoryCapacity: 8 << 30, SeccompRoot: "/var/lib/kubelet/seccomp", SeccompRuntimeDefault: true,
	}
}

func decodeOne(t *testing.T, manifest string) *corev1.Pod {
	t.Helper()
	srcs, warns, err := Decode(strings.NewReader(manifest))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(srcs) != 1 {
		t.Fatalf("Decode: %d pods, want 1 (warnings %v)", len(srcs), warns)
	}
	return srcs[0].Pod
}

func translate(t *testing.T, manifest string) *Plan {
	t.Helper()
	p, err := Translate(decodeOne(t, manifest), opts())
	if err != nil {
		t.Fatalf("Translate: %v", err)
	}
	return p
}

func hasWarning(p *Plan, field string) bool {
	return slices.ContainsFunc(p.Warnings, func(w Warning) bool { return w.Field == field })
}

const fullPod = `
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 5
  securityContext:
    fsGroup: 2000
    sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "0"}]
  volumes:
  - name: shared
    emptyDir: {}
  - name: creds
    persistentVolumeClaim: {claimName: creds}
  - name: host
    hostPath: {path: /srv/data, type: DirectoryOrCreate}
  initContainers:
  - name: setup
    image: busybox:1.36
    command: [sh, -c, "date > /shared/init"]
    volumeMounts: [{name: shared, mountPath: /shared}]
  containers:
  - name: server
    image: busybox
    command: [httpd, -f, -p, "$(PORT)"]
    args: ["$(UNDEFINED)", "$$(PORT)"]
    workingDir: /www
    env:
    - {name: PORT, value: "8080"}
    - {name: URL, value: "http://localhost:$(PORT)/"}
    - name: POD_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    ports: [{containerPort: 8080, hostPort: 31080}, {containerPort: 53, protocol: UDP}]
    resources:
      requests: {cpu: 250m, memory: 64Mi}
      limits: {cpu: 500m, memory: 128Mi, nvidia.com/gpu: "1"}
    volumeMounts:
    - {name: shared, mountPath: /shared}
    - {name: creds, mountPath: /creds}
    - {name: host, mountPath: /data, subPath: logs, readOnly: true}
    securityContext:
      runAsUser: 1000
      runAsGroup: 1000
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}
    livenessProbe: {tcpSocket: {port: 8080}}
  - name: sidekick
    image: registry.local/sidekick@sha256:0000000000000000000000000000000000000000000000000000000000000000
    securityContext: {privileged: true, seccompProfile: {type: Localhost, localhostProfile: prof.json}}
`

func TestTranslateSandbox(t *testing.T) {
	p := translate(t, fullPod)
	sb := p.Sandbox
	if p.Name != "web" || p.Namespace != "default" || sb.Metadata.Uid != "uid-1" || sb.Metadata.Name != "web" || sb.Metadata.Namespace != "default" {
		t.Errorf("metadata: %+v", sb.Metadata)
	}
	if sb.Hostname != "web" {
		t.Errorf("hostname %q", sb.Hostname)
	}
	if sb.LogDirectory != "/var/log/pods/default_web_uid-1" {
		t.Errorf("log directory %q", sb.LogDirectory)
	}
	if sb.Labels["app"] != "web" || sb.Labels[LabelManaged] != "true" {
		t.Errorf("labels %v", sb.Labels)
	}
	if sb.Annotations[AnnotationGracePeriod] != "5" || p.GracePeriod != 5 || p.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Errorf("grace %v / %d, restart policy %s", sb.Annotations, p.GracePeriod, p.RestartPolicy)
	}
	want := []*runtimeapi.PortMapping{
		{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 8080, HostPort: 31080},
		{Protocol: runtimeapi.Protocol_UDP, ContainerPort: 53},
	}
	if len(sb.PortMappings) != 2 {
		t.Fatalf("port mappings %v", sb.PortMappings)
	}
	for i, w := range want {
		g := sb.PortMappings[i]
		if g.Protocol != w.Protocol || g.ContainerPort != w.ContainerPort || g.HostPort != w.HostPort {
			t.Errorf("port mapping %d: %v, want %v", i, g, w)
		}
	}
	if sb.Linux.Sysctls["net.ipv4.ip_unprivileged_port_start"] != "0" {
		t.Errorf("sysctls %v", sb.Linux.Sysctls)
	}
	sc := sb.Linux.SecurityContext
	if !sc.Privileged || sc.Seccomp.ProfileType != runtimeapi.SecurityProfile_RuntimeDefault || !slices.Equal(sc.SupplementalGroups, []int64{2000}) {
		t.Errorf("sandbox security context %v", sc)
	}
	ns := sc.NamespaceOptions
	if ns.Network != runtimeapi.NamespaceMode_POD || ns.Pid != runtimeapi.NamespaceMode_CONTAINER || ns.Ipc != runtimeapi.NamespaceMode_POD {
		t.Errorf("namespaces %v", ns)
	}
	// No cluster DNS: ClusterFirst falls back to the node's resolv.conf.
	if !slices.Equal(sb.DnsConfig.Servers, []string{"192.0.2.53"}) || !slices.Equal(sb.DnsConfig.Searches, []string{"example.org"}) {
		t.Errorf("dns %v", sb.DnsConfig)
	}
	if !hasWarning(p, "spec.dnsPolicy") {
		t.Errorf("no warning for ClusterFirst without a cluster: %v", p.Warnings)
	}
}

func TestTranslateContainers(t *testing.T) {
	p := translate(t, fullPod)
	if len(p.InitContainers) != 1 || len(p.Containers) != 2 {
		t.Fatalf("%d init, %d app containers", len(p.InitContainers), len(p.Containers))
	}
	init := p.InitContainers[0].Config(0, "sha256:img")
	if init.Metadata.Name != "setup" || init.Image.Image != "sha256:img" || init.Image.UserSpecifiedImage != "busybox:1.36" || init.LogPath != "setup/0.log" {
		t.Errorf("init config: %v", init)
	}
	if init.Labels[LabelContainerKind] != "init" || p.InitContainers[0].PullPolicy != corev1.PullIfNotPresent {
		t.Errorf("init labels %v, pull policy %s", init.Labels, p.InitContainers[0].PullPolicy)
	}

	srv := p.Containers[0]
	if srv.PullPolicy != corev1.PullAlways {
		t.Errorf("untagged image: pull policy %s, want Always", srv.PullPolicy)
	}
	c := srv.Config(3, "")
	if c.Metadata.Attempt != 3 || c.LogPath != "server/3.log" || c.Image.Image != "busybox" {
		t.Errorf("restart 3: attempt %d, log %q, image %q", c.Metadata.Attempt, c.LogPath, c.Image.Image)
	}
	// A config handed out must not share state with the plan.
	c.Envs[0].Value = []byte("changed")
	if string(srv.Config(0, "").Envs[0].Value) != "8080" {
		t.Error("Config returns a config sharing the plan's env")
	}
	if !slices.Equal(c.Command, []string{"httpd", "-f", "-p", "8080"}) || !slices.Equal(c.Args, []string{"$(UNDEFINED)", "$(PORT)"}) {
		t.Errorf("command %q args %q", c.Command, c.Args)
	}
	if c.WorkingDir != "/www" {
		t.Errorf("working dir %q", c.WorkingDir)
	}
	var env []string
	for _, kv := range srv.Config(0, "").Envs {
		env = append(env, kv.Key+"="+string(kv.Value))
	}
	if !slices.Equal(env, []string{"PORT=8080", "URL=http://localhost:8080/"}) {
		t.Errorf("env %q", env)
	}
	sc := c.Linux.SecurityContext
	if sc.RunAsUser.GetValue() != 1000 || sc.RunAsGroup.GetValue() != 1000 || !sc.ReadonlyRootfs || !sc.NoNewPrivs || sc.Privileged {
		t.Errorf("security context %v", sc)
	}
	if !slices.Equal(sc.Capabilities.AddCapabilities, []string{"NET_BIND_SERVICE"}) || !slices.Equal(sc.Capabilities.DropCapabilities, []string{"ALL"}) {
		t.Errorf("capabilities %v", sc.Capabilities)
	}
	if sc.Seccomp.ProfileType != runtimeapi.SecurityProfile_RuntimeDefault || !slices.Equal(sc.SupplementalGroups, []int64{2000}) || len(sc.MaskedPaths) == 0 {
		t.Errorf("seccomp %v, groups %v, masked %v", sc.Seccomp, sc.SupplementalGroups, sc.MaskedPaths)
	}

	side := p.Containers[1].Config(0, "")
	if p.Containers[1].PullPolicy != corev1.PullIfNotPresent {
		t.Errorf("digest image: pull policy %s", p.Containers[1].PullPolicy)
	}
	ssc := side.Linux.SecurityContext
	if !ssc.Privileged || ssc.Seccomp.ProfileType != runtimeapi.SecurityProfile_Localhost || ssc.Seccomp.LocalhostRef != "/var/lib/kubelet/seccomp/prof.json" {
		t.Errorf("sidekick security context %v", ssc)
	}
}

func TestTranslateResources(t *testing.T) {
	p := translate(t, fullPod)
	r := p.Containers[0].Config(0, "").Linux.Resources
	// 250m → 256 shares; 500m limit → 50ms of every 100ms.
	if r.CpuShares != 256 || r.CpuQuota != 50000 || r.CpuPeriod != 100000 || r.MemoryLimitInBytes != 128<<20 {
		t.Errorf("server resources: %v", r)
	}
	// Burstable: 1000 - 1000*64Mi/8Gi = 993 (integer division).
	if r.OomScoreAdj != 993 {
		t.Errorf("oom_score_adj %d, want 993", r.OomScoreAdj)
	}
	// No requests or limits: minimum shares, no quota.
	r = p.Containers[1].Config(0, "").Linux.Resources
	if r.CpuShares != 2 || r.CpuQuota != 0 || r.MemoryLimitInBytes != 0 {
		t.Errorf("sidekick resources: %v", r)
	}

	cases := []struct {
		name               string
		resources          string
		shares, quota, mem int64
		oom                int64
		qos                corev1.PodQOSClass
	}{
		{"limits only default the requests (guaranteed)", "limits: {cpu: '2', memory: 1Gi}", 2048, 200000, 1 << 30, -997, corev1.PodQOSGuaranteed},
		{"a tiny limit gets the minimum quota", "limits: {cpu: 1m}", 2, 1000, 0, 999, corev1.PodQOSBurstable},
		{"requests only", "requests: {cpu: 100m}", 102, 0, 0, 999, corev1.PodQOSBurstable},
		{"best effort", "", 2, 0, 0, 1000, corev1.PodQOSBestEffort},
		{"shares are capped", "requests: {cpu: '300'}", 262144, 0, 0, 999, corev1.PodQOSBurstable},
	}
	for _, tc := range cases {
		pod := decodeOne(t, "kind: Pod\nmetadata: {name: r}\nspec:\n  containers:\n  - name: c\n    image: i:1\n    resources: {"+tc.resources+"}\n")
		p, err := Translate(pod, opts())
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		r := p.Containers[0].Config(0, "").Linux.Resources
		if r.CpuShares != tc.shares || r.CpuQuota != tc.quota || r.MemoryLimitInBytes != tc.mem || r.OomScoreAdj != tc.oom {
			t.Errorf("%s: shares %d quota %d memory %d oom %d; want %d %d %d %d", tc.name, r.CpuShares, r.CpuQuota, r.MemoryLimitInBytes, r.OomScoreAdj, tc.shares, tc.quota, tc.mem, tc.oom)
		}
		for i := range pod.Spec.Containers {
			defaultRequests(&pod.Spec.Containers[i])
		}
		if q := qosClass(pod); q != tc.qos {
			t.Errorf("%s: qos %s, want %s", tc.name, q, tc.qos)
		}
	}
}

func TestTranslateVolumes(t *testing.T) {
	p := translate(t, fullPod)
	mounts := p.Containers[0].Config(0, "").Mounts
	if len(mounts) != 3 {
		t.Fatalf("mounts %v (the claim must be skipped)", mounts)
	}
	if m := mounts[2]; m.ContainerPath != "/dev/termination-log" || m.HostPath != "/var/lib/husk-cli/pods/uid-1/containers/server/termination-log" || m.Readonly ||
		p.Containers[0].TerminationLog != m.HostPath || p.Containers[0].FallbackToLogs {
		t.Errorf("termination message mount %v", m)
	}
	if m := mounts[0]; m.ContainerPath != "/shared" || m.HostPath != "/var/lib/husk-cli/pods/uid-1/volumes/shared" || m.Readonly {
		t.Errorf("emptyDir mount %v", m)
	}
	if m := mounts[1]; m.ContainerPath != "/data" || m.HostPath != "/srv/data/logs" || !m.Readonly || m.Propagation != runtimeapi.MountPropagation_PROPAGATION_PRIVATE {
		t.Errorf("hostPath subPath mount %v", m)
	}
	// The init container mounts the same emptyDir.
	if m := p.InitContainers[0].Config(0, "").Mounts; len(m) != 2 || m[0].HostPath != "/var/lib/husk-cli/pods/uid-1/volumes/shared" {
		t.Errorf("init mounts %v", m)
	}
	want := []HostPath{
		{Field: "spec.volumes[0].emptyDir", Path: "/var/lib/husk-cli/pods/uid-1/volumes/shared", EmptyDir: true},
		{Field: "spec.volumes[2].hostPath", Path: "/srv/data", Type: corev1.HostPathDirectoryOrCreate},
		{Field: "spec.containers[0].volumeMounts[2].subPath", Path: "/srv/data/logs", SubPath: true},
	}
	if !reflect.DeepEqual(p.HostPaths, want) {
		t.Errorf("host paths\n got %v\nwant %v", p.HostPaths, want)
	}
	if p.FSGroup == nil || *p.FSGroup != 2000 {
		t.Errorf("fsGroup %v", p.FSGroup)
	}

	for _, bad := range []string{
		"volumeMounts: [{name: nope, mountPath: /x}]",
		"volumeMounts: [{name: v, mountPath: relative}]",
		"volumeMounts: [{name: v, mountPath: /x, subPath: ../../etc}]",
	} {
		pod := decodeOne(t, "kind: Pod\nmetadata: {name: v}\nspec:\n  volumes: [{name: v, emptyDir: {}}]\n  containers:\n  - name: c\n    image: i:1\n    "+bad+"\n")
		if _, err := Translate(pod, opts()); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestTranslateWarnings(t *testing.T) {
	p := translate(t, fullPod)
	for _, f := range []string{
		"spec.volumes[1].persistentVolumeClaim",
		"spec.containers[0].volumeMounts[1]",
		"spec.containers[0].env[2].valueFrom",
		"spec.containers[0].resources.limits[nvidia.com/gpu]",
		"spec.dnsPolicy",
	} {
		if !hasWarning(p, f) {
			t.Errorf("no warning for %s; got %v", f, p.Warnings)
		}
	}
	for _, w := range p.Warnings {
		if w.Field == "spec.volumes[1].persistentVolumeClaim" && w.String() != "spec.volumes[1].persistentVolumeClaim: PersistentVolumeClaims need a cluster; volume skipped" {
			t.Errorf("claim warning reads %q", w)
		}
	}
	// The GPU limit must not turn into a request warning too.
	if hasWarning(p, "spec.containers[0].resources.requests[nvidia.com/gpu]") {
		t.Errorf("defaulted request reported: %v", p.Warnings)
	}

	other := translate(t, `
kind: Pod
metadata: {name: w}
spec:
  serviceAccountName: robot
  nodeSelector: {disk: ssd}
  dnsPolicy: None
  dnsConfig: {nameservers: [192.0.2.1], options: [{name: ndots, value: "2"}]}
  volumes:
  - {name: cm, configMap: {name: x, optional: true}}
  - {name: claim, persistentVolumeClaim: {claimName: c}}
  - {name: proj, projected: {sources: [{serviceAccountToken: {path: t}}]}}
  - {name: nfs, nfs: {server: s, path: /}}
  containers:
  - name: c
    image: i:1
`)
	for _, f := range []string{"spec.serviceAccountName", "spec.nodeSelector", "spec.volumes[1].persistentVolumeClaim",
		"spec.volumes[2].projected.sources[0]", "spec.volumes[3].nfs"} {
		if !hasWarning(other, f) {
			t.Errorf("no warning for %s; got %v", f, other.Warnings)
		}
	}
	if hasWarning(other, "spec.dnsPolicy") {
		t.Errorf("dnsPolicy None warned: %v", other.Warnings)
	}
	if dns := other.Sandbox.DnsConfig; !slices.Equal(dns.Servers, []string{"192.0.2.1"}) || !slices.Equal(dns.Options, []string{"ndots:2"}) || len(dns.Searches) != 0 {
		t.Errorf("dnsPolicy None: %v", dns)
	}
}

func TestTranslateHostNamespacesAndSidecar(t *testing.T) {
	p := translate(t, `
kind: Pod
metadata: {name: h, namespace: ops}
spec:
  hostNetwork: true
  hostPID: true
  hostIPC: true
  dnsPolicy: Default
  initContainers:
  - {name: proxy, image: i:1, restartPolicy: Always}
  containers:
  - {name: c, image: i:1, securityContext: {runAsNonRoot: true}}
`)
	if p.Sandbox.Hostname != "" {
		t.Errorf("host network pod gets hostname %q", p.Sandbox.Hostname)
	}
	ns := p.Sandbox.Linux.SecurityContext.NamespaceOptions
	if ns.Network != runtimeapi.NamespaceMode_NODE || ns.Pid != runtimeapi.NamespaceMode_NODE || ns.Ipc != runtimeapi.NamespaceMode_NODE {
		t.Errorf("namespaces %v", ns)
	}
	if p.Sandbox.LogDirectory != "/var/log/pods/ops_h_uid-1" {
		t.Errorf("log dir %q", p.Sandbox.LogDirectory)
	}
	if !p.InitContainers[0].Sidecar || p.InitContainers[0].Config(0, "").Labels[LabelContainerKind] != "sidecar" {
		t.Errorf("sidecar not recognised: %+v", p.InitContainers[0])
	}
	if !p.Containers[0].RunAsNonRoot {
		t.Error("runAsNonRoot without runAsUser must ask for the image user check")
	}
	if len(p.Warnings) != 0 {
		t.Errorf("warnings: %v", p.Warnings)
	}
}

func TestDecodeWorkloads(t *testing.T) {
	srcs, warns, err := Decode(strings.NewReader(`
# a comment before the first document
apiVersion: v1
kind: Pod
metadata: {name: one}
spec:
  containers: [{name: c, image: i:1, imagePullPolcy: Always}]
---
apiVersion: v1
kind: Service
metadata: {name: svc}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: dep, namespace: apps}
spec:
  replicas: 3
  template:
    metadata: {labels: {app: dep}}
    spec:
      containers: [{name: c, image: i:1}]
      volumes: [{name: s, persistentVolumeClaim: {claimName: s}}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: cron}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: c, image: i:1}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 5 {
		t.Fatalf("%d pods, want 5 (one, three of the Deployment, the CronJob's)", len(srcs))
	}
	if len(warns) != 1 || !strings.Contains(warns[0].String(), "Service is not a Pod") {
		t.Errorf("document warnings %v", warns)
	}
	if len(srcs[0].Warnings) != 1 || !strings.Contains(srcs[0].Warnings[0].Message, "imagePullPolcy") {
		t.Errorf("misspelt field not reported: %v", srcs[0].Warnings)
	}
	dep := srcs[1]
	hash := dep.Pod.Labels["pod-template-hash"]
	if dep.Pod.Name != "" || hash == "" || dep.Pod.GenerateName != "dep-"+hash+"-" || dep.Pod.Namespace != "apps" || dep.Pod.Labels["app"] != "dep" || dep.Origin != "Deployment/dep" || dep.FieldPrefix != "spec.template." {
		t.Errorf("deployment pod: %+v", dep)
	}
	for i, s := range srcs[1:4] {
		if s.Replica != i || s.Pod.GenerateName != dep.Pod.GenerateName || (i > 0) != (len(s.Warnings) == 0) {
			t.Errorf("replica %d: %d, %q, warnings %v", i, s.Replica, s.Pod.GenerateName, s.Warnings)
		}
	}
	p, err := Translate(withName(dep.Pod), opts())
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	for _, w := range p.Warnings {
		fields = append(fields, w.Under(dep.FieldPrefix).Field)
	}
	if !slices.Contains(fields, "spec.template.spec.volumes[0].persistentVolumeClaim") {
		t.Errorf("deployment warnings not under its template: %v", fields)
	}
	cron := srcs[4]
	if cron.Pod.GenerateName != "cron-" || cron.Pod.Labels["job-name"] != "cron" || cron.FieldPrefix != "spec.jobTemplate.spec.template." || cron.Pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("cronjob pod: %+v", cron)
	}
	if cron.Job == nil || *cron.Job != (JobSpec{Name: "cron", Completions: 1, Parallelism: 1, BackoffLimit: 6}) {
		t.Errorf("cronjob's job: %+v", cron.Job)
	}
}

func withName(p *corev1.Pod) *corev1.Pod {
	p = p.DeepCopy()
	p.Name = p.GenerateName + "x"
	return p
}

func TestDecodeReplicas(t *testing.T) {
	srcs, _, err := Decode(strings.NewReader(`
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  template: {spec: {containers: [{name: c, image: i:1}]}}
---
kind: DaemonSet
metadata: {name: agent}
spec:
  template: {spec: {containers: [{name: c, image: i:1}]}}
---
kind: Job
metadata: {name: batch}
spec:
  completions: 3
  parallelism: 2
  backoffLimit: 2
  template: {spec: {restartPolicy: OnFailure, containers: [{name: c, image: i:1}]}}
---
kind: ReplicaSet
metadata: {name: none}
spec:
  replicas: 0
  template: {spec: {containers: [{name: c, image: i:1}]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range srcs {
		names = append(names, s.Pod.Name+"|"+s.Pod.GenerateName)
	}
	if want := []string{"db-0|", "db-1|", "|agent-", "|batch-"}; !slices.Equal(names, want) {
		t.Fatalf("pods %v, want %v", names, want)
	}
	if srcs[1].Pod.Spec.Hostname != "db-1" || srcs[1].Pod.Labels["apps.kubernetes.io/pod-index"] != "1" {
		t.Errorf("statefulset pod 1: %+v", srcs[1].Pod.ObjectMeta)
	}
	if j := srcs[3].Job; j == nil || *j != (JobSpec{Name: "batch", Completions: 3, Parallelism: 2, BackoffLimit: 2}) {
		t.Errorf("job %+v", j)
	}
	for _, m := range []string{
		"kind: Job\nmetadata: {name: j}\nspec: {template: {spec: {containers: [{name: c, image: i}]}}}",
		"kind: Job\nmetadata: {name: j}\nspec: {completions: 0, template: {spec: {restartPolicy: Never, containers: [{name: c, image: i}]}}}",
		"kind: Deployment\nmetadata: {name: d}\nspec: {replicas: -1, template: {spec: {containers: [{name: c, image: i}]}}}",
		"kind: Deployment\nspec: {template: {spec: {containers: [{name: c, image: i}]}}}",
	} {
		if _, _, err := Decode(strings.NewReader(m)); err == nil {
			t.Errorf("no error for %q", m)
		}
	}
}

func TestTranslateErrors(t *testing.T) {
	for _, m := range []string{
		"kind: Pod\nmetadata: {name: x}\nspec: {containers: []}",
		"kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c}]}",
		"kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, image: i}, {name: c, image: i}]}",
		"kind: Pod\nmetadata: {name: x}\nspec: {restartPolicy: Sometimes, containers: [{name: c, image: i}]}",
		"kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, image: i, ports: [{containerPort: 70000}]}]}",
		"kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, image: i, securityContext: {runAsNonRoot: true, runAsUser: 0}}]}",
		"kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: ../../x, image: i}]}",
		"kind: Pod\nmetadata: {name: ../x}\nspec: {containers: [{name: c, image: i}]}",
		"kind: Pod\nmetadata: {name: x, namespace: a_b}\nspec: {containers: [{name: c, image: i}]}",
	} {
		if _, err := Translate(decodeOne(t, m), opts()); err == nil {
			t.Errorf("no error for %q", m)
		}
	}
}

// subPathExpr expands the container's env; what it gives must stay in
// the volume. terminationMessagePath and its policy are honoured.
func TestSubPathExprAndTerminationMessage(t *testing.T) {
	p := translate(t, `
kind: Pod
metadata: {name: p}
spec:
  volumes: [{name: logs, emptyDir: {}}]
  containers:
  - name: c
    image: i:1
    env: [{name: POD, value: p-1}]
    terminationMessagePath: /tmp/why
    terminationMessagePolicy: FallbackToLogsOnError
    volumeMounts: [{name: logs, mountPath: /logs, subPathExpr: "$(POD)/app"}]
`)
	c := p.Containers[0]
	ms := c.Config(0, "").Mounts
	if ms[0].HostPath != "/var/lib/husk-cli/pods/uid-1/volumes/logs/p-1/app" {
		t.Errorf("subPathExpr mount %v", ms[0])
	}
	if ms[1].ContainerPath != "/tmp/why" || !c.FallbackToLogs {
		t.Errorf("termination message: %v, fallback %v", ms[1], c.FallbackToLogs)
	}
	for _, bad := range []string{
		`[{name: logs, mountPath: /logs, subPathExpr: "$(UP)"}]`,
		`[{name: logs, mountPath: /logs, subPathExpr: "$(POD)", subPath: x}]`,
	} {
		m := "kind: Pod\nmetadata: {name: x}\nspec:\n  volumes: [{name: logs, emptyDir: {}}]\n  containers:\n  - {name: c, image: i, env: [{name: UP, value: ../..}], volumeMounts: " + bad + "}"
		if _, err := Translate(decodeOne(t, m), opts()); err == nil || !strings.Contains(err.Error(), "subPathExpr") {
			t.Errorf("%s: %v, want a subPathExpr error", bad, err)
		}
	}
	m := "kind: Pod\nmetadata: {name: x}\nspec: {securityContext: {fsGroupChangePolicy: Sometimes}, containers: [{name: c, image: i}]}"
	if _, err := Translate(decodeOne(t, m), opts()); err == nil || !strings.Contains(err.Error(), "fsGroupChangePolicy") {
		t.Errorf("unknown fsGroupChangePolicy: %v", err)
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two"}
	for in, want := range map[string]string{
		"$(A)-$(B)":   "1-two",
		"$$(A)":       "$(A)",
		"$(C)":        "$(C)",
		"$(A":         "$(A",
		"cost: $5 $":  "cost: $5 $",
		"no dollars":  "no dollars",
		"$(A)$(A)$$$": "11$$",
	} {
		if got := expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseResolvConf(t *testing.T) {
	cfg, err := ParseResolvConf(strings.NewReader("# generated\nnameserver 127.0.0.53\nsearch a.example b.example\noptions edns0 trust-ad\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Servers, []string{"127.0.0.53"}) || !slices.Equal(cfg.Searches, []string{"a.example", "b.example"}) || !slices.Equal(cfg.Options, []string{"edns0", "trust-ad"}) {
		t.Errorf("parsed %v", cfg)
	}
	if !OnlyLoopbackServers(cfg) {
		t.Error("127.0.0.53 is loopback")
	}
	if OnlyLoopbackServers(&runtimeapi.DNSConfig{Servers: []string{"127.0.0.53", "192.0.2.1"}}) {
		t.Error("a non-loopback server is usable")
	}
}

// TestMemoryEmptyDir: medium Memory is a tmpfs of sizeLimit, with no
// warning; a sizeLimit on disk is a warning.
func TestMemoryEmptyDir(t *testing.T) {
	p := translate(t, `
kind: Pod
metadata: {name: m}
spec:
  volumes:
  - {name: cache, emptyDir: {medium: Memory, sizeLimit: 16Mi}}
  - {name: disk, emptyDir: {sizeLimit: 1Gi}}
  containers:
  - {name: c, image: i:1, volumeMounts: [{name: cache, mountPath: /cache}, {name: disk, mountPath: /disk}]}
`)
	var mem, disk HostPath
	for _, hp := range p.HostPaths {
		switch hp.Field {
		case "spec.volumes[0].emptyDir":
			mem = hp
		case "spec.volumes[1].emptyDir":
			disk = hp
		}
	}
	if !mem.Memory || mem.SizeLimit != 16<<20 || disk.Memory {
		t.Errorf("memory emptyDir %+v, disk emptyDir %+v", mem, disk)
	}
	if hasWarning(p, "spec.volumes[0].emptyDir.medium") || hasWarning(p, "spec.volumes[0].emptyDir.sizeLimit") || !hasWarning(p, "spec.volumes[1].emptyDir.sizeLimit") {
		t.Errorf("warnings %v", p.Warnings)
	}
}

// TestProbes: kubelet's defaults filled in, named ports resolved, what
// cannot run a warning; readiness and startup probes and hooks beside.
func TestProbes(t *testing.T) {
	p := translate(t, `
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: web
    image: i:1
    ports: [{name: http, containerPort: 8080}]
    livenessProbe: {httpGet: {port: http, path: /healthz}, periodSeconds: 2}
  - name: tcp
    image: i:1
    livenessProbe: {tcpSocket: {port: 53}, failureThreshold: 1, initialDelaySeconds: 5}
  - name: ex
    image: i:1
    livenessProbe: {exec: {command: [test, -f, /ok]}}
  - name: grpc
    image: i:1
    livenessProbe: {grpc: {port: 9000, service: health}}
    readinessProbe: {exec: {command: [cat, /ready]}, successThreshold: 2}
    startupProbe: {tcpSocket: {port: 9000}, successThreshold: 2}
    lifecycle:
      postStart: {exec: {command: [touch, /started]}}
      preStop: {sleep: {seconds: 3}}
  - name: bad
    image: i:1
    livenessProbe: {httpGet: {port: nope}}
    lifecycle: {preStop: {tcpSocket: {port: 80}}}
`)
	byName := map[string]*Probe{}
	for _, c := range p.Containers {
		byName[c.Name] = c.Liveness
	}
	if w := byName["web"]; w == nil || w.HTTPGet == nil || w.HTTPGet.Port != 8080 || w.HTTPGet.Path != "/healthz" || w.HTTPGet.Scheme != "http" ||
		w.Period != 2*time.Second || w.Timeout != time.Second || w.FailureThreshold != 3 {
		t.Errorf("web: %+v", w)
	}
	if c := byName["tcp"]; c == nil || c.TCPPort != 53 || c.FailureThreshold != 1 || c.InitialDelay != 5*time.Second || c.Period != 10*time.Second {
		t.Errorf("tcp: %+v", c)
	}
	if e := byName["ex"]; e == nil || !slices.Equal(e.Exec, []string{"test", "-f", "/ok"}) {
		t.Errorf("ex: %+v", e)
	}
	if g := byName["grpc"]; g == nil || g.GRPC == nil || *g.GRPC != (GRPCProbe{Port: 9000, Service: "health"}) {
		t.Errorf("grpc: %+v", g)
	}
	if byName["bad"] != nil || !hasWarning(p, "spec.containers[4].livenessProbe") || !hasWarning(p, "spec.containers[4].lifecycle.preStop") {
		t.Errorf("bad %+v, warnings %v", byName["bad"], p.Warnings)
	}
	g := p.Containers[3]
	if r := g.Readiness; r == nil || !slices.Equal(r.Exec, []string{"cat", "/ready"}) || r.SuccessThreshold != 2 {
		t.Errorf("readiness: %+v", r)
	}
	if g.Startup != nil || !hasWarning(p, "spec.containers[3].startupProbe") {
		t.Errorf("a startup probe with successThreshold 2 (the API refuses it) not refused: %+v", g.Startup)
	}
	if g.PostStart == nil || !slices.Equal(g.PostStart.Exec, []string{"touch", "/started"}) || g.PreStop == nil || g.PreStop.Sleep != 3*time.Second {
		t.Errorf("hooks: %+v, %+v", g.PostStart, g.PreStop)
	}
	ps, err := PreStop(g.Config(0, "").Annotations)
	if err != nil || ps == nil || ps.Sleep != 3*time.Second {
		t.Errorf("preStop from the annotation: %+v, %v", ps, err)
	}
	if ps, err := PreStop(p.Containers[4].Config(0, "").Annotations); ps != nil || err != nil {
		t.Errorf("preStop of a container without one: %+v, %v", ps, err)
	}
}
