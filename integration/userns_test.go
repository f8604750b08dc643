package integration

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestUserNamespacePod runs a pod with its own user namespace (kubelet's
// hostUsers: false): its processes are root inside and an unprivileged
// range on the host; the image's files, seen through idmapped layers, are
// owned by root inside; what the container writes lands on the host as
// the mapped ids; an idmapped hostPath volume shows host root's files as
// root's; sysfs is the pod's own network's. It survives a daemon kill, an
// image removal keeps the layers a running container uses, and removal
// leaves nothing. Requests husk cannot honour get InvalidArgument.
func TestUserNamespacePod(t *testing.T) {
	d := StartDaemon(t)
	ctx := ctxT(t, 3*time.Minute)
	ref := busyboxRef(t)
	pull(t, d, ref)

	st, err := d.RT.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !st.GetRuntimeHandlers()[0].GetFeatures().GetUserNamespaces() {
		t.Fatal("Status does not advertise user namespaces on a kernel that has them")
	}

	const base, size = 200000, 65536
	mapping := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: base, Length: size}}
	userns := &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: mapping, Gids: mapping}

	for name, bad := range map[string]*runtimeapi.UserNamespace{
		"container mode": {Mode: runtimeapi.NamespaceMode_CONTAINER},
		"target mode":    {Mode: runtimeapi.NamespaceMode_TARGET},
		"two ranges": {Mode: runtimeapi.NamespaceMode_POD,
			Uids: append(mapping, &runtimeapi.IDMapping{ContainerId: 0, HostId: 400000, Length: size}), Gids: mapping},
		"root unmapped": {Mode: runtimeapi.NamespaceMode_POD,
			Uids: []*runtimeapi.IDMapping{{ContainerId: 1, HostId: base, Length: size}}, Gids: mapping},
	} {
		pc := podConfig("userns-bad")
		pc.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{UsernsOptions: bad}}
		_, err := d.RT.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pc})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "user namespace") {
			t.Errorf("%s: RunPodSandbox = %v, want InvalidArgument naming the user namespace", name, err)
		}
	}

	pc := podConfig("userns")
	pc.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{UsernsOptions: userns}}
	podID := runPod(t, d, pc)

	vol := t.TempDir()
	if err := os.Chmod(filepath.Dir(vol), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "hostfile"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cc := ctrConfig("a", ref, "sleep", "3600")
	cc.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{UsernsOptions: userns}}
	cc.Mounts = []*runtimeapi.Mount{{ContainerPath: "/vol", HostPath: vol, UidMappings: mapping, GidMappings: mapping}}
	ctr := runContainer(t, d, podID, pc, cc)

	if got := strings.Fields(execOut(t, d, ctr, "cat", "/proc/self/uid_map")); strings.Join(got, " ") != "0 200000 65536" {
		t.Errorf("uid_map in the container: %q", got)
	}
	if got := strings.TrimSpace(execOut(t, d, ctr, "id", "-u")); got != "0" {
		t.Errorf("id -u = %q, want 0", got)
	}
	// The layers are host root's; through the idmap they are the
	// namespace root's, so root in the pod can write its rootfs.
	if got := strings.TrimSpace(execOut(t, d, ctr, "stat", "-c", "%u:%g", "/", "/bin", "/vol/hostfile")); got != "0:0\n0:0\n0:0" {
		t.Errorf("owners in the container: %q, want root's", got)
	}
	execOut(t, d, ctr, "sh", "-c", "echo hi > /etc/written && echo v > /vol/written && chown 1000:1000 /etc/written")
	upper := filepath.Join(d.Root, "pods", podID, "containers", ctr, "upper", "etc", "written")
	if fi, err := os.Stat(upper); err != nil {
		t.Errorf("file written in the container is not in its upper dir: %v", err)
	} else if s := fi.Sys().(*syscall.Stat_t); s.Uid != base+1000 || s.Gid != base+1000 {
		t.Errorf("file chowned to 1000 in the pod is %d:%d on the host, want %d", s.Uid, s.Gid, base+1000)
	}
	if fi, err := os.Stat(filepath.Join(vol, "written")); err != nil {
		t.Errorf("volume write: %v", err)
	} else if s := fi.Sys().(*syscall.Stat_t); s.Uid != 0 {
		t.Errorf("file root wrote to the idmapped volume is uid %d on the host, want 0", s.Uid)
	}
	// sysfs shows the pod's own network (the netns belongs to the pod's
	// user namespace), not the host's bridge.
	if nets := execOut(t, d, ctr, "ls", "/sys/class/net"); !strings.Contains(nets, "eth0") || strings.Contains(nets, d.Bridge) {
		t.Errorf("/sys/class/net in the pod: %q", nets)
	}

	// Layers of a removed image stay while a container uses them.
	layers, _ := os.ReadDir(filepath.Join(d.Root, "layers"))
	if _, err := d.Img.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadDir(filepath.Join(d.Root, "layers")); len(after) != len(layers) {
		t.Errorf("layers dir had %d entries, %d after removing the image under a running container", len(layers), len(after))
	}

	d.Kill()
	d.Start()
	if got := strings.TrimSpace(execOut(t, d, ctr, "cat", "/etc/written")); got != "hi" {
		t.Errorf("after a daemon restart the container reads %q", got)
	}

	if _, err := d.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, d, podID)
	assertDaemonClean(t, d)
	if left, _ := os.ReadDir(filepath.Join(d.Root, "idmap")); len(left) > 0 {
		t.Errorf("idmapped layer clones left: %d", len(left))
	}
}
