package integration

import (
	"strings"
	"testing"
)

// TestPodYAMLLiveness: the foreground supervisor runs liveness probes as
// kubelet does. main fails its exec probe, is stopped with the pod's grace
// period (it exits 7 on SIGTERM) and restarted per restartPolicy. srv's
// httpGet probe (to the pod's IP) fails while /healthz is not there yet,
// then passes: fewer failures in a row than its threshold, so srv is left
// alone.
func TestPodYAMLLiveness(t *testing.T) {
	ref := busyboxRef(t)
	d := StartDaemon(t)
	h := newHuskCLI(t, d)
	file := writeManifest(t, d.Dir, "live.yaml", strings.ReplaceAll(`apiVersion: v1
kind: Pod
metadata: {name: livepod}
spec:
  restartPolicy: OnFailure
  dnsPolicy: Default
  terminationGracePeriodSeconds: 2
  volumes:
  - {name: data, emptyDir: {}}
  containers:
  - name: main
    image: IMAGE
    command: [sh, -c, "if [ -f /data/once ]; then echo second-run; touch /tmp/healthy; sleep 2; exit 0; fi; touch /data/once; echo first-run; trap 'exit 7' TERM; sleep 3600 & wait"]
    volumeMounts: [{name: data, mountPath: /data}]
    livenessProbe:
      exec: {command: [test, -f, /tmp/healthy]}
      periodSeconds: 1
      failureThreshold: 1
  - name: srv
    image: IMAGE
    command: [sh, -c, "mkdir -p /www && httpd -p 8080 -h /www && sleep 2 && echo ok > /www/healthz && sleep 18"]
    ports: [{name: web, containerPort: 8080}]
    livenessProbe:
      httpGet: {port: web, path: /healthz}
      initialDelaySeconds: 1
      periodSeconds: 1
      failureThreshold: 8
`, "IMAGE", ref))
	out, errOut, code := h.run("", "pod", "run", "-f", file)
	if code != 0 {
		t.Fatalf("pod run: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"liveness probe of main in pod default/livepod failed (1 of 1): exec [\"test\" \"-f\" \"/tmp/healthy\"]: exit code 1",
		"container main of pod default/livepod failed its liveness probe; stopping it",
		"container main of pod default/livepod exited with code 7",
		"pod default/livepod completed",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if !strings.Contains(errOut, "liveness probe of srv in pod default/livepod failed (1 of 8): GET http://10.") ||
		!strings.Contains(errOut, ":8080/healthz: 404 Not Found") {
		t.Errorf("srv's first probes did not fail on the pod's IP with 404:\n%s", errOut)
	}
	if strings.Contains(errOut, "srv of pod default/livepod failed its liveness probe") || strings.Contains(errOut, "failed (8 of 8)") {
		t.Errorf("srv stopped by its probe:\n%s", errOut)
	}
	for _, want := range []string{"[main] first-run\n", "[main] second-run\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	assertDaemonClean(t, d)
}
