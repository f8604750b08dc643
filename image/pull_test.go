package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestPullByTagResolveRemove(t *testing.T) {
	ctx := context.Background()
	host := newRegistry(t, nil)
	img := imageOf(t,
		layerOf(t, []entry{{name: "bin/", typ: '5', mode: 0o755}, {name: "bin/sh", body: "#!", mode: 0o755}}),
		layerOf(t, []entry{{name: "etc/", typ: '5', mode: 0o755}, {name: "etc/hostname", body: "x"}}),
	)
	mdig := push(t, host+"/test/app:v1", img)
	wantID, _ := img.ConfigName()

	s := newStore(t, Config{})
	got, err := s.Pull(ctx, host+"/test/app:v1", nil)
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if got.ID != wantID.String() {
		t.Errorf("ID = %s, want %s", got.ID, wantID)
	}
	if want := []string{host + "/test/app:v1"}; !slices.Equal(got.RepoTags, want) {
		t.Errorf("RepoTags = %v, want %v", got.RepoTags, want)
	}
	if want := []string{host + "/test/app@" + mdig.String()}; !slices.Equal(got.RepoDigests, want) {
		t.Errorf("RepoDigests = %v, want %v", got.RepoDigests, want)
	}
	if !slices.Equal(got.Config.Cmd, []string{"/bin/sh"}) {
		t.Errorf("Config.Cmd = %v", got.Config.Cmd)
	}
	if len(got.Layers) != 2 {
		t.Fatalf("Layers = %v, want 2", got.Layers)
	}
	if b, err := os.ReadFile(filepath.Join(got.Layers[0], "bin/sh")); err != nil || string(b) != "#!" {
		t.Errorf("lowest layer bin/sh = %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(got.Layers[1], "etc/hostname")); err != nil {
		t.Errorf("top layer: %v", err)
	}
	m, _ := img.Manifest()
	if want := uint64(m.Layers[0].Size + m.Layers[1].Size); got.Size != want {
		t.Errorf("Size = %d, want %d", got.Size, want)
	}
	for _, d := range []v1.Hash{mdig, wantID} {
		if _, err := s.readBlob(d); err != nil {
			t.Errorf("blob %s not stored: %v", d, err)
		}
	}

	hex := strings.TrimPrefix(got.ID, "sha256:")
	for _, ref := range []string{
		host + "/test/app:v1", host + "/test/app@" + mdig.String(),
		got.ID, hex, hex[:12], "sha256:" + hex[:8],
	} {
		r, err := s.Resolve(ref)
		if err != nil || r.ID != got.ID {
			t.Errorf("Resolve(%q) = %s, %v; want %s", ref, r.ID, err, got.ID)
		}
	}
	for _, ref := range []string{"busybox", host + "/test/app:v2", "sha256:" + strings.Repeat("0", 64)} {
		if _, err := s.Resolve(ref); !errors.Is(err, ErrNotFound) {
			t.Errorf("Resolve(%q) err = %v, want ErrNotFound", ref, err)
		}
	}
	if _, err := s.Resolve("Bad/Name:x"); !errors.Is(err, ErrInvalidReference) {
		t.Errorf("Resolve(bad) err = %v, want ErrInvalidReference", err)
	}
	if l := s.List(); len(l) != 1 || l[0].ID != got.ID {
		t.Errorf("List = %v", l)
	}

	// Records survive a restart.
	s2 := newStore(t, Config{Root: s.root})
	if r, err := s2.Resolve(host + "/test/app:v1"); err != nil || !slices.Equal(r.Layers, got.Layers) {
		t.Errorf("after reopen: %v, %v", r.Layers, err)
	}

	if err := s.Remove(host + "/test/app:v1"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := s.Resolve(got.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("after Remove, Resolve err = %v", err)
	}
	if err := s.Remove(got.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Remove err = %v, want ErrNotFound", err)
	}
	for _, l := range got.Layers {
		if _, err := os.Stat(l); !os.IsNotExist(err) {
			t.Errorf("layer %s left after Remove: %v", l, err)
		}
	}
	if _, err := s.readBlob(wantID); err == nil {
		t.Errorf("config blob left after Remove")
	}
	if _, err := os.Stat(s.recordPath(got.ID)); !os.IsNotExist(err) {
		t.Errorf("record left after Remove: %v", err)
	}
}

func TestPullByDigestRecordsNoTag(t *testing.T) {
	host := newRegistry(t, nil)
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	d := push(t, host+"/rand:latest", img)
	s := newStore(t, Config{})
	got, err := s.Pull(context.Background(), host+"/rand@"+d.String(), nil)
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if len(got.RepoTags) != 0 {
		t.Errorf("RepoTags = %v, want none", got.RepoTags)
	}
	if want := []string{host + "/rand@" + d.String()}; !slices.Equal(got.RepoDigests, want) {
		t.Errorf("RepoDigests = %v, want %v", got.RepoDigests, want)
	}
	if len(got.Layers) != 1 {
		t.Fatalf("Layers = %v", got.Layers)
	}
}

func TestPullIndexPicksPlatform(t *testing.T) {
	host := newRegistry(t, nil)
	mine := imageOf(t, layerOf(t, []entry{{name: "mine", body: "1"}}))
	other := imageOf(t, layerOf(t, []entry{{name: "other", body: "2"}}))
	otherArch := "s390x"
	if platform().Architecture == otherArch {
		otherArch = "ppc64le"
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: otherArch}}},
		mutate.IndexAddendum{Add: mine, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: platform().Architecture, Variant: platform().Variant}}},
	)
	ref := host + "/multi:1"
	nr := mustRef(t, ref)
	if err := remote.WriteIndex(nr, idx); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()
	s := newStore(t, Config{})
	got, err := s.Pull(context.Background(), ref, nil)
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	wantID, _ := mine.ConfigName()
	if got.ID != wantID.String() {
		t.Errorf("ID = %s, want the %s image %s", got.ID, platform().Architecture, wantID)
	}
	if want := host + "/multi@" + idxDigest.String(); !slices.Equal(got.RepoDigests, []string{want}) {
		t.Errorf("RepoDigests = %v, want [%s] (the index digest)", got.RepoDigests, want)
	}
	if _, err := os.Stat(filepath.Join(got.Layers[0], "mine")); err != nil {
		t.Errorf("wrong platform unpacked: %v", err)
	}
	if _, err := s.readBlob(idxDigest); err != nil {
		t.Errorf("index blob not kept: %v", err)
	}
}

func TestRepullMovesTag(t *testing.T) {
	ctx := context.Background()
	host := newRegistry(t, nil)
	ref := host + "/app:latest"
	a := imageOf(t, layerOf(t, []entry{{name: "a", body: "a"}}))
	b := imageOf(t, layerOf(t, []entry{{name: "b", body: "b"}}))
	push(t, ref, a)
	s := newStore(t, Config{})
	imgA, err := s.Pull(ctx, ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pull(ctx, host+"/app:keep", nil); err == nil {
		t.Fatal("pull of a tag never pushed succeeded")
	}
	push(t, ref, b)
	imgB, err := s.Pull(ctx, ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	if imgA.ID == imgB.ID {
		t.Fatal("test images are equal")
	}
	r, err := s.Resolve(ref)
	if err != nil || r.ID != imgB.ID {
		t.Errorf("tag resolves to %s, %v; want %s", r.ID, err, imgB.ID)
	}
	// a keeps its repo digest, like containerd's dangling image.
	oldA, err := s.Resolve(imgA.ID)
	if err != nil {
		t.Fatalf("old image gone although it has a digest: %v", err)
	}
	if len(oldA.RepoTags) != 0 || len(oldA.RepoDigests) != 1 {
		t.Errorf("old image tags %v digests %v", oldA.RepoTags, oldA.RepoDigests)
	}
}

func TestRemoveUntagsFirst(t *testing.T) {
	ctx := context.Background()
	host := newRegistry(t, nil)
	img := imageOf(t, layerOf(t, []entry{{name: "x", body: "x"}}))
	push(t, host+"/app:1", img)
	push(t, host+"/app:2", img)
	s := newStore(t, Config{})
	for _, r := range []string{host + "/app:1", host + "/app:2"} {
		if _, err := s.Pull(ctx, r, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Remove(host + "/app:1"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Resolve(host + "/app:2")
	if err != nil {
		t.Fatalf("other tag lost: %v", err)
	}
	if !slices.Equal(got.RepoTags, []string{host + "/app:2"}) {
		t.Errorf("RepoTags = %v", got.RepoTags)
	}
	if _, err := s.Resolve(host + "/app:1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("removed tag still resolves: %v", err)
	}
}

func TestConcurrentPullsShareLayer(t *testing.T) {
	host := newRegistry(t, nil)
	base := layerOf(t, []entry{{name: "base", body: strings.Repeat("b", 1<<16)}})
	imgs := []v1.Image{
		imageOf(t, base, layerOf(t, []entry{{name: "one", body: "1"}})),
		imageOf(t, base, layerOf(t, []entry{{name: "two", body: "2"}})),
	}
	refs := []string{host + "/one:1", host + "/two:1"}
	for i := range imgs {
		push(t, refs[i], imgs[i])
	}
	s := newStore(t, Config{})
	var wg sync.WaitGroup
	res := make([]Image, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = s.Pull(context.Background(), refs[i%2], nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("pull %d: %v", i, err)
		}
	}
	for i := 1; i < 4; i++ {
		if res[i].Layers[0] != res[0].Layers[0] {
			t.Errorf("base layer unpacked twice: %s vs %s", res[i].Layers[0], res[0].Layers[0])
		}
	}
	s.mu.Lock()
	n := len(s.layers.Layers)
	s.mu.Unlock()
	if n != 3 {
		t.Errorf("layer index has %d layers, want 3", n)
	}
	ents, _ := os.ReadDir(s.layersDir)
	var dirs []string
	for _, e := range ents {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	if len(dirs) != 3 {
		t.Errorf("layer dirs = %v, want 3 (no leftovers)", dirs)
	}
}

func TestPullBasicAuth(t *testing.T) {
	const user, pass = "husk", "s3cret"
	host := basicAuthRegistry(t, user, pass)
	img := imageOf(t, layerOf(t, []entry{{name: "x", body: "x"}}))
	push(t, host+"/private:1", img, remote.WithAuth(&authn.Basic{Username: user, Password: pass}))
	s := newStore(t, Config{})
	ctx := context.Background()
	if _, err := s.Pull(ctx, host+"/private:1", nil); err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Errorf("anonymous pull err = %v, want the registry's UNAUTHORIZED", err)
	}
	if _, err := s.Pull(ctx, host+"/private:1", &Auth{Username: user, Password: "wrong"}); err == nil {
		t.Error("pull with a wrong password succeeded")
	}
	if _, err := s.Pull(ctx, host+"/private:1", &Auth{Username: user, Password: pass}); err != nil {
		t.Errorf("pull with user/password: %v", err)
	}
	// docker's "auth" field: base64("husk:s3cret")
	if _, err := s.Pull(ctx, host+"/private:1", &Auth{Auth: "aHVzazpzM2NyZXQ="}); err != nil {
		t.Errorf("pull with auth field: %v", err)
	}
}

func TestPullInvalidReference(t *testing.T) {
	s := newStore(t, Config{})
	for _, ref := range []string{"", "docker.io/UPPER/case", "a b", "busybox@sha256:zz"} {
		if _, err := s.Pull(context.Background(), ref, nil); !errors.Is(err, ErrInvalidReference) {
			t.Errorf("Pull(%q) err = %v, want ErrInvalidReference", ref, err)
		}
	}
}

func TestPullRejectsMaliciousLayer(t *testing.T) {
	host := newRegistry(t, nil)
	outside := t.TempDir()
	img := imageOf(t, layerOf(t, []entry{
		{name: "evil", typ: '2', link: outside},
		{name: "evil/pwned", body: "x"},
	}))
	push(t, host+"/evil:1", img)
	s := newStore(t, Config{})
	_, err := s.Pull(context.Background(), host+"/evil:1", nil)
	if err == nil || !strings.Contains(err.Error(), "evil/pwned") {
		t.Fatalf("Pull err = %v, want one naming the entry", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "pwned")); !os.IsNotExist(err) {
		t.Errorf("file written outside the layer: %v", err)
	}
	ents, _ := os.ReadDir(s.layersDir)
	for _, e := range ents {
		if e.Name() != layerIndexFile {
			t.Errorf("left in layers dir: %s", e.Name())
		}
	}
	if len(s.List()) != 0 {
		t.Errorf("image recorded despite failure")
	}
}

func TestNormalizedNames(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                  "docker.io/library/busybox:latest",
		"busybox:1":                "docker.io/library/busybox:1",
		"registry.k8s.io/pause":    "registry.k8s.io/pause:latest",
		"127.0.0.1:5000/a/b:c":     "127.0.0.1:5000/a/b:c",
		"docker.io/library/x:tag1": "docker.io/library/x:tag1",
	} {
		p, err := parseRef(in)
		if err != nil || p.String() != want {
			t.Errorf("parseRef(%q) = %q, %v; want %q", in, p.String(), err, want)
		}
	}
	p, err := parseRef("busybox:1@sha256:" + strings.Repeat("a", 64))
	if err != nil || p.tag != "" || p.String() != "docker.io/library/busybox@sha256:"+strings.Repeat("a", 64) {
		t.Errorf("tag+digest ref = %+v, %v", p, err)
	}
}
