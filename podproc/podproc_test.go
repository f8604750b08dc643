package podproc

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseStat(t *testing.T) {
	// A name with a space and a parenthesis: fields count from the last ')'.
	line := "4242 (my (odd) cmd) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1186878 3133440 405 18446744073709551615"
	comm, ppid, ticks, err := parseStat([]byte(line))
	if err != nil || comm != "my (odd) cmd" || ppid != 17 || ticks != 300 {
		t.Fatalf("parseStat = %q, %d, %d, %v; want \"my (odd) cmd\", 17, 300", comm, ppid, ticks, err)
	}
	if _, _, _, err := parseStat([]byte("12 (x) S 1")); err == nil {
		t.Error("truncated stat: no error")
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\tsleep\nUid:\t1000\t65534\t65534\t65534\nGid:\t0\t0\t0\t0\nVmRSS:\t     812 kB\n"
	uid, rss := parseStatus([]byte(status))
	if uid != 65534 || rss != 812*1024 {
		t.Errorf("parseStatus = uid %d, rss %d; want the effective uid 65534 and 812 KiB", uid, rss)
	}
	// A kernel thread or zombie has no VmRSS.
	if _, rss := parseStatus([]byte("Uid:\t0\t0\t0\t0\n")); rss != 0 {
		t.Errorf("no VmRSS: rss %d", rss)
	}
}

func TestPodOwnersMatch(t *testing.T) {
	pod := strings.Repeat("a", 64)
	web := strings.Repeat("b", 64)
	o := &Owners{ids: map[string]owner{pod: {pod, infraName}, web: {web, "web"}}, podCgroup: "/kubepods/besteffort/pod1234"}
	for _, c := range []struct {
		name  string
		paths []string
		want  string // "" : not the pod's
	}{
		{"husk infra (named after the pod)", []string{"/husk/" + pod + "/" + pod}, infraName},
		{"husk container inside the pod's cgroup", []string{"/husk/" + pod + "/" + web}, "web"},
		{"containerd cgroupfs", []string{"/k8s.io/" + web}, "web"},
		{"containerd systemd, v1 hierarchies", []string{"/", "/kubepods.slice/kubepods-besteffort.slice/cri-containerd-" + web + ".scope"}, "web"},
		{"under the pod cgroup, no id", []string{"/kubepods/besteffort/pod1234/other"}, "(pod)"},
		{"a sibling pod with a longer name", []string{"/kubepods/besteffort/pod12345/x"}, ""},
		{"another container", []string{"/k8s.io/" + strings.Repeat("c", 64)}, ""},
		{"the root cgroup", []string{"/"}, ""},
	} {
		ow, ok := o.match(c.paths, nil)
		if got := map[bool]string{true: ow.name}[ok]; got != c.want {
			t.Errorf("%s: matched %q, want %q", c.name, got, c.want)
		}
	}
	// A runtime whose cgroups carry no id: the main process's cgroup says.
	o2 := &Owners{ids: map[string]owner{web: {web, "web"}}}
	if ow, ok := o2.match([]string{"/", "/runtime/ctr-7"}, map[string]owner{"/runtime/ctr-7": {web, "web"}, "/": {web, "web"}}); !ok || ow.name != "web" {
		t.Errorf("by main process cgroup: %v %v", ow, ok)
	}
}

func TestPodProcessesFakeProc(t *testing.T) {
	pod, web := strings.Repeat("a", 64), strings.Repeat("b", 64)
	root := t.TempDir()
	mk := func(pid, cgroup, stat, status, cmdline string) {
		d := filepath.Join(root, pid)
		if err := os.MkdirAll(filepath.Join(d, "root", "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string]string{"cgroup": cgroup, "stat": stat, "status": status, "cmdline": cmdline,
			"uid_map": "0 100000 65536\n", "root/etc/passwd": "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"} {
			if err := os.WriteFile(filepath.Join(d, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	mk("10", "0::/husk/"+pod+"/"+pod+"\n", "10 (pause) S 5 10 10 0 -1 0 0 0 0 0 1 1 0 0", "Uid:\t165534\t165534\t165534\t165534\nVmRSS:\t4 kB\n", "/pause\x00")
	mk("20", "0::/husk/"+pod+"/"+web+"\n", "20 (sleep) S 5 20 20 0 -1 0 0 0 0 0 150 50 0 0", "Uid:\t100000\t100000\t100000\t100000\nVmRSS:\t100 kB\n", "sleep\x003600\x00")
	mk("30", "0::/user.slice\n", "30 (bash) S 1 30 30 0 -1 0 0 0 0 0 1 1 0 0", "Uid:\t0\t0\t0\t0\n", "bash\x00")
	mk("40", "0::/husk/"+pod+"/"+web+"\n", "40 (zombie) Z 20 20 20 0 -1 0 0 0 0 0 0 0 0 0", "Uid:\t100000\t100000\t100000\t100000\n", "")
	if err := os.WriteFile(filepath.Join(root, "uptime"), []byte("1 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := &Owners{ids: map[string]owner{pod: {pod, infraName}, web: {web, "web"}}, podCgroup: "/husk/" + pod}
	ps, err := Processes(root, o)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, fmt.Sprintf("%s %d %d %s %.2f %d %s", p.Container, p.PID, p.PPID, p.User, p.CPUSeconds, p.RSSBytes, p.Command))
	}
	want := []string{
		// The user namespace maps 165534 back to 65534, nobody in the
		// container's passwd.
		"(infra) 10 5 nobody 0.02 4096 /pause",
		"web 20 5 root 2.00 102400 sleep 3600",
		"web 40 20 root 0.00 0 [zombie]",
	}
	if !slices.Equal(got, want) {
		t.Errorf("processes:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
