package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const generatePodYAML = `apiVersion: v1
kind: Pod
metadata:
  name: genpod
  namespace: husk-test
  labels: {app: genpod}
  annotations: {purpose: generate}
spec:
  hostname: gen-host
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 2
  dnsPolicy: Default
  securityContext:
    fsGroup: 2000
    supplementalGroups: [3000]
    sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "0"}]
  volumes:
  - {name: shared, emptyDir: {}}
  - {name: host, hostPath: {path: HOSTDIR, type: Directory}}
  initContainers:
  - name: init
    image: IMAGE
    command: [sh, -c, "echo done > /shared/init-done; mkdir -p /shared/sub"]
    volumeMounts: [{name: shared, mountPath: /shared}]
  - name: sidecar
    image: IMAGE
    restartPolicy: Always
    command: [sh, -c, "exec sleep 3600"]
  containers:
  - name: server
    image: IMAGE
    command: [sh, -c]
    args: ['echo "$GREETING" > /shared/index.html; exec httpd -f -p $(PORT) -h /shared']
    workingDir: /shared
    env:
    - {name: PORT, value: "8080"}
    - {name: GREETING, value: "hello-$(PORT)-$$(PORT)"}
    ports: [{containerPort: 8080, hostPort: HOSTPORT}]
    resources:
      requests: {cpu: 250m, memory: 32Mi}
      limits: {cpu: 500m, memory: 64Mi}
    volumeMounts:
    - {name: shared, mountPath: /shared}
    - {name: shared, mountPath: /sub, subPath: sub}
    - {name: host, mountPath: /host, readOnly: true}
    securityContext:
      runAsUser: 1000
      runAsGroup: 1000
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
  - name: client
    image: IMAGE
    command: [sh, -c, "exec sleep 3600"]
    stdin: true
    tty: true
`

// TestPodGenerate runs a pod, writes its manifest with husk pod generate,
// removes it and runs the manifest: the second pod is made from the same
// CRI configs as the first (compared in the two records, the uid aside),
// and works the same. A stopped pod generates the same manifest.
func TestPodGenerate(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	h := newHuskCLI(t, d)
	hostDir := filepath.Join(d.Dir, "gen-host-dir")
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hostDir, "from-host"), []byte("host-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hostPort := 34080 + os.Getpid()%1000
	manifest := strings.NewReplacer("IMAGE", ref, "HOSTPORT", strconv.Itoa(hostPort), "HOSTDIR", hostDir).Replace(generatePodYAML)
	file := writeManifest(t, d.Dir, "genpod.yaml", manifest)

	podID1, uid1 := runDetached(t, d, h, file)
	checkGenPod(t, d, podID1)
	rec1 := readPodRecord(t, h, uid1)

	generated := filepath.Join(d.Dir, "generated.yaml")
	out, errOut, code := h.run("", "pod", "generate", "husk-test/genpod", "-f", generated)
	if code != 0 || out != "" {
		t.Fatalf("pod generate -f: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	t.Logf("husk pod generate notes:\n%s", errOut)
	for _, line := range strings.Split(strings.TrimSpace(errOut), "\n") {
		if line != "" && !strings.HasPrefix(line, "note: ") {
			t.Errorf("pod generate stderr line %q is not a note", line)
		}
	}
	b, err := os.ReadFile(generated)
	if err != nil {
		t.Fatal(err)
	}
	gen := string(b)
	t.Logf("generated manifest:\n%s", gen)
	if !strings.HasPrefix(gen, "apiVersion: v1\nkind: Pod\n") || strings.Contains(gen, "cli.husk.io/") {
		t.Errorf("generated manifest:\n%s", gen)
	}
	// By ID prefix, to stdout: the same manifest.
	if out := h.ok("pod", "generate", podID1[:12]); out != gen {
		t.Errorf("pod generate to stdout differs from -f:\n%s", out)
	}

	h.ok("pod", "rm", "husk-test/genpod")
	assertPodGone(t, d, podID1)

	podID2, uid2 := runDetached(t, d, h, generated)
	if uid2 == uid1 {
		t.Fatalf("the generated pod has the first one's uid %s", uid1)
	}
	checkGenPod(t, d, podID2)
	rec2 := readPodRecord(t, h, uid2)

	// The same configs, but for what is named after the uid (log dir,
	// volume dirs, the sandbox's metadata).
	sb1, sb2 := &runtimeapi.PodSandboxConfig{}, &runtimeapi.PodSandboxConfig{}
	unmarshalUID(t, rec1.Sandbox, uid1, sb1)
	unmarshalUID(t, rec2.Sandbox, uid2, sb2)
	if !proto.Equal(sb1, sb2) {
		t.Errorf("sandbox config of the generated pod:\n%s\nwant:\n%s", prototext.Format(sb2), prototext.Format(sb1))
	}
	if len(rec1.Containers) != len(rec2.Containers) {
		t.Fatalf("%d containers in the generated pod, want %d", len(rec2.Containers), len(rec1.Containers))
	}
	for i := range rec1.Containers {
		c1, c2 := rec1.Containers[i], rec2.Containers[i]
		if c1.Name != c2.Name || c1.Kind != c2.Kind {
			t.Errorf("container %d: %s (%s), want %s (%s)", i, c2.Name, c2.Kind, c1.Name, c1.Kind)
			continue
		}
		cfg1, cfg2 := &runtimeapi.ContainerConfig{}, &runtimeapi.ContainerConfig{}
		unmarshalUID(t, c1.Config, uid1, cfg1)
		unmarshalUID(t, c2.Config, uid2, cfg2)
		if !proto.Equal(cfg1, cfg2) {
			t.Errorf("config of container %s of the generated pod:\n%s\nwant:\n%s", c1.Name, prototext.Format(cfg2), prototext.Format(cfg1))
		}
	}

	// Stopped, it generates the same manifest again.
	h.ok("pod", "stop", "--grace-period", "0", "husk-test/genpod")
	if out := h.ok("pod", "generate", "husk-test/genpod"); out != gen {
		t.Errorf("manifest of the stopped, generated pod differs:\n%s\nfirst:\n%s", out, gen)
	}

	h.ok("pod", "rm", "husk-test/genpod")
	assertPodGone(t, d, podID2)
	assertDaemonClean(t, d)
}

// runDetached runs a manifest's one pod detached and returns its sandbox
// ID and uid.
func runDetached(t *testing.T, d *Daemon, h *huskCLI, file string) (string, string) {
	t.Helper()
	out, errOut, code := h.run("", "pod", "run", "--detach", "-f", file)
	if code != 0 {
		t.Fatalf("pod run -f %s: exit %d\nstdout:\n%s\nstderr:\n%s\ndaemon log:\n%s", file, code, out, errOut, tail(d.Log(), 50))
	}
	fields := strings.Fields(strings.TrimSpace(out))
	if len(fields) < 4 || fields[0] != "pod" || fields[1] != "husk-test/genpod" {
		t.Fatalf("pod run output %q", out)
	}
	id := fields[len(fields)-1]
	st, err := d.RT.PodSandboxStatus(ctxT(t, time.Minute), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		t.Fatalf("status of pod %s: %v", id, err)
	}
	return id, st.Status.Metadata.Uid
}

// checkGenPod checks that the pod works as its manifest says: the init
// container ran before the server, $(VAR) and $$ came through, the
// server's user and working dir, the hostPath read-only. (What an exec
// cannot see, as stdin and tty, the records' comparison covers.)
func checkGenPod(t *testing.T, d *Daemon, podID string) {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	list, err := d.RT.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: podID}})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, c := range list.Containers {
		ids[c.Metadata.Name] = c.Id
	}
	if len(ids) != 4 {
		t.Fatalf("containers of pod %s: %v, want init, sidecar, server, client", podID, ids)
	}
	waitFor(t, 20*time.Second, "the server's page", func() bool {
		ex, err := d.RT.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: ids["server"], Cmd: []string{"cat", "/shared/index.html"}, Timeout: 10})
		return err == nil && ex.ExitCode == 0 && string(ex.Stdout) == "hello-8080-$(PORT)\n"
	})
	if out := execOut(t, d, ids["server"], "cat", "/shared/init-done", "/host/from-host"); out != "done\nhost-file\n" {
		t.Errorf("init's file and the host's in the server: %q", out)
	}
	if out := execOut(t, d, ids["server"], "sh", "-c", "id -u; pwd; touch /host/x 2>/dev/null && echo writable || echo read-only"); out != "1000\n/shared\nread-only\n" {
		t.Errorf("server's user, working dir and hostPath: %q", out)
	}
}

// podRecordConfigs is the part of husk pod run's record (podrun's
// podRecord) the test compares.
type podRecordConfigs struct {
	Sandbox    json.RawMessage `json:"sandbox"`
	Containers []struct {
		Name   string          `json:"name"`
		Kind   string          `json:"kind"`
		Config json.RawMessage `json:"config"`
	} `json:"containers"`
}

func readPodRecord(t *testing.T, h *huskCLI, uid string) podRecordConfigs {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.stateDir, "pods", uid, "pod.json"))
	if err != nil {
		t.Fatalf("record of pod %s: %v", uid, err)
	}
	var rec podRecordConfigs
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatalf("record of pod %s: %v", uid, err)
	}
	if len(rec.Sandbox) == 0 || len(rec.Containers) == 0 {
		t.Fatalf("record of pod %s has no configs:\n%s", uid, b)
	}
	return rec
}

// unmarshalUID decodes a recorded config with the pod's uid replaced by
// a placeholder: it is in the paths husk pod run makes per pod.
func unmarshalUID(t *testing.T, raw json.RawMessage, uid string, m proto.Message) {
	t.Helper()
	if err := protojson.Unmarshal([]byte(strings.ReplaceAll(string(raw), uid, "UID")), m); err != nil {
		t.Fatalf("recorded config: %v", err)
	}
}
