package integration

import (
	"os"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const objectsYAML = `apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: husk-test
data:
  color: blue
  size: large
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: husk-test
stringData:
  password: s3cret
---
apiVersion: v1
kind: Pod
metadata:
  name: objpod
  namespace: husk-test
spec:
  containers:
  - name: app
    image: IMAGE
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
    envFrom:
    - prefix: CFG_
      configMapRef: {name: settings}
    env:
    - name: PASSWORD
      valueFrom:
        secretKeyRef: {name: creds, key: password}
    - name: MAYBE
      valueFrom:
        configMapKeyRef: {name: absent, key: k, optional: true}
    volumeMounts:
    - {name: conf, mountPath: /etc/conf}
    - {name: secret, mountPath: /etc/secret}
  volumes:
  - name: conf
    configMap:
      name: settings
      items:
      - {key: color, path: sub/color.txt, mode: 0640}
  - name: secret
    secret:
      secretName: creds
      defaultMode: 0400
`

// TestPodYAMLConfigMapEnv runs, through the CLI, a manifest whose Pod takes
// env from a ConfigMap (envFrom, with a prefix) and a Secret (a key ref)
// of the same file; a reference to an object that is not there fails the
// run with kubelet's error before any pod is made.
func TestPodYAMLConfigMapEnv(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	h := newHuskCLI(t, d)
	file := writeManifest(t, d.Dir, "objects.yaml", strings.ReplaceAll(objectsYAML, "IMAGE", ref))
	out, errOut, code := h.run("", "pod", "run", "--detach", "-f", file)
	if code != 0 {
		t.Fatalf("pod run: exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(errOut, "need a cluster") {
		t.Errorf("ConfigMaps or Secrets reported as needing a cluster:\n%s", errOut)
	}
	fields := strings.Fields(strings.TrimSpace(out))
	podID := fields[len(fields)-1]
	ctx := ctxT(t, time.Minute)
	ctrs, err := d.RT.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: podID}})
	if err != nil || len(ctrs.Containers) != 1 {
		t.Fatalf("containers of the pod: %v %v", ctrs, err)
	}
	env := execOut(t, d, ctrs.Containers[0].Id, "env")
	for _, want := range []string{"CFG_color=blue", "CFG_size=large", "PASSWORD=s3cret"} {
		if !strings.Contains(env, want+"\n") {
			t.Errorf("env lacks %s:\n%s", want, env)
		}
	}
	if strings.Contains(env, "MAYBE=") {
		t.Errorf("an optional absent ConfigMap set MAYBE:\n%s", env)
	}
	// The volumes: the items asked for with their modes, read-only; the
	// Secret's on a tmpfs.
	id := ctrs.Containers[0].Id
	if got := execOut(t, d, id, "sh", "-c", "cat /etc/conf/sub/color.txt; stat -c %a /etc/conf/sub/color.txt; ls /etc/conf"); got != "blue640\nsub\n" {
		t.Errorf("configMap volume: %q", got)
	}
	if got := execOut(t, d, id, "sh", "-c", "cat /etc/secret/password; stat -c %a /etc/secret/password"); got != "s3cret400\n" {
		t.Errorf("secret volume: %q", got)
	}
	if got := execOut(t, d, id, "sh", "-c", "grep ' /etc/secret ' /proc/mounts | cut -d' ' -f3"); strings.TrimSpace(got) != "tmpfs" {
		t.Errorf("the secret volume is on %q, want tmpfs", got)
	}
	if ex, err := d.RT.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"touch", "/etc/conf/x"}, Timeout: 20}); err != nil || ex.ExitCode == 0 {
		t.Errorf("the configMap volume is writable: %v %v", err, ex.GetExitCode())
	}
	if out := h.ok("pod", "rm", "objpod"); strings.TrimSpace(out) != podID {
		t.Errorf("pod rm: %q", out)
	}
	assertPodGone(t, d, podID)
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), h.stateDir) {
		t.Errorf("mounts left under the CLI's state dir %s after pod rm", h.stateDir)
	}

	missing := writeManifest(t, d.Dir, "missing.yaml", strings.Replace(strings.ReplaceAll(objectsYAML, "IMAGE", ref), "name: creds\n", "name: other\n", 1))
	_, errOut, code = h.run("", "pod", "run", "--detach", "-f", missing)
	if code == 0 || !strings.Contains(errOut, `secret "creds" not found`) {
		t.Errorf("a Secret that is not there: exit %d, stderr %q", code, errOut)
	}
	pods, err := d.RT.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(pods.Items) != 0 {
		t.Errorf("pods after a run that failed on a missing Secret: %v %v", pods.GetItems(), err)
	}

	// The Secret from a file beside it, as podman's --configmap.
	extra := writeManifest(t, d.Dir, "creds.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: husk-test}\nstringData: {password: other}\n")
	out, errOut, code = h.run("", "pod", "run", "--detach", "-f", missing, "--configmap", extra)
	if code != 0 {
		t.Fatalf("pod run --configmap: exit %d\n%s%s", code, out, errOut)
	}
	fields = strings.Fields(strings.TrimSpace(out))
	podID = fields[len(fields)-1]
	ctrs, err = d.RT.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: podID}})
	if err != nil || len(ctrs.Containers) != 1 {
		t.Fatalf("containers of the pod: %v %v", ctrs, err)
	}
	if got := execOut(t, d, ctrs.Containers[0].Id, "sh", "-c", "echo $PASSWORD; cat /etc/secret/password"); got != "other\nother" {
		t.Errorf("the Secret of --configmap: %q", got)
	}
	h.ok("pod", "rm", "objpod")
	assertPodGone(t, d, podID)
}
