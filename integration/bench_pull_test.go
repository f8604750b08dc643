package integration

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/husk-runtime/husk/integration/testenv"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The pull benchmark's image: several layers of random (incompressible)
// files and one of many small text files, 216 MiB unpacked. Built once
// into testenv's cache dir; the same seed gives the same image.
const (
	pullBenchVersion    = "v1" // bump when the shape below changes
	pullBenchBigLayers  = 5
	pullBenchBigFiles   = 5       // per big layer
	pullBenchBigFile    = 8 << 20 // 5 x 5 x 8 MiB = 200 MiB of random data
	pullBenchSmallFiles = 4000    // in the last layer
	pullBenchSmallFile  = 4 << 10 // 16 MiB of small files
)

// pullBenchLayers returns the cached layer files (gzip) and their total
// uncompressed size, building them on first use.
func pullBenchLayers(b *testing.B) ([]string, int64) {
	dir := filepath.Join(testenv.DefaultCacheDir(), "pullbench-"+pullBenchVersion)
	meta := filepath.Join(dir, "layers.json")
	var m struct {
		Files        []string
		Uncompressed int64
	}
	if data, err := os.ReadFile(meta); err == nil && json.Unmarshal(data, &m) == nil {
		return m.Files, m.Uncompressed
	}
	b.Logf("building the pull benchmark's image layers in %s (once)", dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewChaCha8([32]byte{'h', 'u', 's', 'k'}))
	for i := 0; i <= pullBenchBigLayers; i++ {
		path := filepath.Join(dir, fmt.Sprintf("layer-%d.tar.gz", i))
		n, err := writeBenchLayer(path, i, rng)
		if err != nil {
			b.Fatal(err)
		}
		m.Files = append(m.Files, path)
		m.Uncompressed += n
	}
	data, _ := json.Marshal(m)
	if err := os.WriteFile(meta, data, 0o644); err != nil { // written last: its presence means complete
		b.Fatal(err)
	}
	return m.Files, m.Uncompressed
}

// countWriter counts what goes through it: the uncompressed tar size.
type countWriter struct {
	w *bufio.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeBenchLayer writes layer i: random files for i < pullBenchBigLayers,
// the small files otherwise. It returns the uncompressed size.
func writeBenchLayer(path string, i int, rng *rand.Rand) (int64, error) {
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	cw := &countWriter{w: bufio.NewWriterSize(zw, 1<<20)}
	tw := tar.NewWriter(cw)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: testenv.Epoch, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if i < pullBenchBigLayers {
		buf := make([]byte, pullBenchBigFile)
		for j := 0; j < pullBenchBigFiles; j++ {
			for k := 0; k+8 <= len(buf); k += 8 {
				v := rng.Uint64()
				for s := 0; s < 8; s++ {
					buf[k+s] = byte(v >> (8 * s))
				}
			}
			if err := add(fmt.Sprintf("data/%d/blob-%d", i, j), buf); err != nil {
				return 0, err
			}
		}
	} else {
		words := strings.Fields("pod sandbox container image layer runtime shim registry mirror network cgroup mount")
		for j := 0; j < pullBenchSmallFiles; j++ {
			var sb strings.Builder
			for sb.Len() < pullBenchSmallFile {
				sb.WriteString(words[rng.IntN(len(words))])
				sb.WriteByte(' ')
			}
			if err := add(fmt.Sprintf("small/%02d/file-%d.txt", j%40, j), []byte(sb.String()[:pullBenchSmallFile])); err != nil {
				return 0, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return 0, err
	}
	if err := cw.w.Flush(); err != nil {
		return 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	return cw.n, os.Rename(path+".tmp", path)
}

func pullBenchImage(b *testing.B) (v1.Image, int64, int64) {
	files, uncompressed := pullBenchLayers(b)
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: testenv.Platform().Architecture, OS: "linux", Created: v1.Time{Time: testenv.Epoch},
		Config: v1.Config{Env: []string{"PATH=" + testenv.DefaultPath}}, RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		b.Fatal(err)
	}
	var compressed int64
	for _, f := range files {
		l, err := tarball.LayerFromFile(f, tarball.WithMediaType(types.DockerLayer))
		if err != nil {
			b.Fatal(err)
		}
		n, err := l.Size()
		if err != nil {
			b.Fatal(err)
		}
		compressed += n
		if img, err = mutate.Append(img, mutate.Addendum{Layer: l, MediaType: types.DockerLayer}); err != nil {
			b.Fatal(err)
		}
	}
	return img, compressed, uncompressed
}

// blobProxy sits between a runtime and the registry and records when blob
// bytes flow: from the first blob request to the last byte sent is the
// download, whatever the runtime does with the bytes.
type blobProxy struct {
	Addr        string
	mu          sync.Mutex
	first, last time.Time
	bytes       int64
}

func newBlobProxy(b *testing.B, registry string) *blobProxy {
	target, err := url.Parse("http://" + registry)
	if err != nil {
		b.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	p := &blobProxy{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	p.Addr = l.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			p.mu.Lock()
			if p.first.IsZero() {
				p.first = time.Now()
			}
			p.mu.Unlock()
			w = &blobWriter{ResponseWriter: w, p: p}
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	b.Cleanup(func() { _ = srv.Close() })
	return p
}

// take returns what flowed since the last take and starts afresh.
func (p *blobProxy) take() (bytes int64, window time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	bytes, window = p.bytes, p.last.Sub(p.first)
	p.bytes, p.first, p.last = 0, time.Time{}, time.Time{}
	return bytes, window
}

type blobWriter struct {
	http.ResponseWriter
	p *blobProxy
}

func (w *blobWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.p.mu.Lock()
	w.p.bytes += int64(n)
	w.p.last = time.Now()
	w.p.mu.Unlock()
	return n, err
}

func (w *blobWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// How each runtime logs the unpacking of one layer: husk's "layer
// unpacked" (took, of which read_wait waiting for the download), and
// containerd's "diff applied" (d; it applies layers from its content store
// once downloaded). The unpack time is what each spent on the layer beyond
// waiting for bytes.
var (
	huskUnpackLine = regexp.MustCompile(`msg="layer unpacked".* took=(\S+) read_wait=(\S+)`)
	ctrdApplyLine  = regexp.MustCompile(`msg="diff applied" d=(\S+)`)
)

func unpackTimes(log string, containerd bool) ([]time.Duration, error) {
	var out []time.Duration
	for _, line := range strings.Split(log, "\n") {
		if containerd {
			if m := ctrdApplyLine.FindStringSubmatch(line); m != nil {
				d, err := time.ParseDuration(strings.Trim(m[1], `"`))
				if err != nil {
					return nil, fmt.Errorf("%q: %w", line, err)
				}
				out = append(out, d)
			}
			continue
		}
		if m := huskUnpackLine.FindStringSubmatch(line); m != nil {
			took, err1 := time.ParseDuration(m[1])
			wait, err2 := time.ParseDuration(m[2])
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("%q: %v %v", line, err1, err2)
			}
			out = append(out, took-wait)
		}
	}
	return out, nil
}

// BenchmarkPull200MB pulls a 216 MiB image of six layers (five of random
// data, one of 4000 small files) from a docker-registry on 127.0.0.1,
// through husk's CRI, containerd 2.4's (`make containerd2`) and Debian's
// containerd 1.6, interleaved round by round (the first runtime rotates),
// removing it between pulls. It reports, per runtime:
//   - MB/s: compressed bytes over the whole PullImage (the figure to
//     compare: download, unpack and everything else);
//   - download-MB/s: bytes the registry sent over the time from the first
//     blob request to the last byte (through a proxy that watches them);
//   - unpack-MB/s: unpacked bytes over the time the runtime spent on its
//     layers beyond waiting for their bytes (from its debug log), one layer
//     at a time, i.e. the rate of one unpacking stream; and the same for
//     the layer of small files alone (small-unpack-MB/s).
//
// Run by `make bench-pull`; figures, not asserts.
func BenchmarkPull200MB(b *testing.B) {
	bb := busyboxRef(b)
	registry := strings.SplitN(bb, "/", 2)[0]
	img, compressed, uncompressed := pullBenchImage(b)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	if err := testenv.Push(ctx, img, registry+"/bench/pull200:"+pullBenchVersion); err != nil {
		b.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		b.Fatal(err)
	}
	smallSize := int64(pullBenchSmallFiles * pullBenchSmallFile)
	proxy := newBlobProxy(b, registry)
	ref := proxy.Addr + "/bench/pull200:" + pullBenchVersion
	b.Logf("image %s: %d layers, %.1f MB compressed, %.1f MB unpacked", ref, len(layers), float64(compressed)/1e6, float64(uncompressed)/1e6)

	type runtime struct {
		name       string
		img        runtimeapi.ImageServiceClient
		log        func() string
		containerd bool

		pulls               int
		sent                int64
		whole, window       time.Duration
		unpack, smallUnpack time.Duration
	}
	d := StartDaemon(b)
	runtimes := []*runtime{{name: "husk", img: d.Img, log: d.Log}}
	for _, c := range []struct {
		name   string
		newest bool
	}{{"containerd2", true}, {"containerd", false}} {
		ctrd := StartContainerdWith(b, ContainerdOptions{LogLevel: "debug", Newest: c.newest})
		// containerd reaches 127.0.0.1 registries over plain HTTP only when told.
		if err := testenv.WriteMirrorHosts(ctrd.CertsDir, proxy.Addr, []string{proxy.Addr}); err != nil {
			b.Fatal(err)
		}
		runtimes = append(runtimes, &runtime{name: c.name, img: ctrd.Img, log: ctrd.Log, containerd: true})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range runtimes {
			rt := runtimes[(i+j)%len(runtimes)]
			proxy.take()
			logStart := len(rt.log())
			t0 := time.Now()
			if _, err := rt.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
				b.Fatalf("%s: PullImage: %v", rt.name, err)
			}
			whole := time.Since(t0)
			n, w := proxy.take()
			if n < compressed {
				b.Fatalf("%s: the registry sent %d bytes for %d of layers: the image was not pulled afresh", rt.name, n, compressed)
			}
			// The log line of the last layer may trail the reply.
			var ts []time.Duration
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if ts, err = unpackTimes(rt.log()[logStart:], rt.containerd); err != nil {
					b.Fatal(err)
				}
				if len(ts) >= len(layers) || time.Now().After(deadline) {
					break
				}
			}
			if len(ts) != len(layers) {
				b.Fatalf("%s: %d layer unpack lines in its log for %d layers", rt.name, len(ts), len(layers))
			}
			rt.pulls++
			rt.sent, rt.window, rt.whole = rt.sent+n, rt.window+w, rt.whole+whole
			for _, t := range ts {
				rt.unpack += t
			}
			// The layer of small files is the smallest and, unpacked one
			// layer at a time, not always the last one logged: the
			// shortest unpack of a layer whose size is known is taken.
			rt.smallUnpack += slices.Min(ts)
			if _, err := rt.img.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
				b.Fatalf("%s: RemoveImage: %v", rt.name, err)
			}
		}
	}
	b.StopTimer()
	mb := func(bytes int64, n int, d time.Duration) float64 {
		return float64(bytes) * float64(n) / 1e6 / d.Seconds()
	}
	b.Logf("%-12s %6s %10s %14s %12s %18s %s", "runtime", "pulls", "MB/s", "download-MB/s", "unpack-MB/s", "small-unpack-MB/s", "husk MB/s ÷ its")
	for _, rt := range runtimes {
		whole := mb(compressed, rt.pulls, rt.whole)
		b.ReportMetric(whole, rt.name+"-MB/s")
		b.ReportMetric(float64(rt.sent)/1e6/rt.window.Seconds(), rt.name+"-download-MB/s")
		b.ReportMetric(mb(uncompressed, rt.pulls, rt.unpack), rt.name+"-unpack-MB/s")
		b.Logf("%-12s %6d %10.1f %14.1f %12.1f %18.1f %.2fx", rt.name, rt.pulls, whole, float64(rt.sent)/1e6/rt.window.Seconds(),
			mb(uncompressed, rt.pulls, rt.unpack), mb(smallSize, rt.pulls, rt.smallUnpack), mb(compressed, runtimes[0].pulls, runtimes[0].whole)/whole)
	}
}
