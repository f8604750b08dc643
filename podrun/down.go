package podrun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/husk-runtime/husk/criclient"
	"github.com/husk-runtime/husk/kubepod"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Down removes what `husk pod run -f file` made: every pod whose record
// names the manifest (file, an absolute path; empty for stdin), and the
// pods of srcs with a fixed name (a Pod, a StatefulSet's), which is how a
// manifest read from stdin is matched. A record whose sandbox is already
// gone has its files removed all the same. grace < 0 is each pod's own
// grace period. It returns the pods removed, "namespace/name".
func (r *Runner) Down(ctx context.Context, file string, srcs []kubepod.Source, grace int64) ([]string, error) {
	named := map[string]bool{}
	for _, s := range srcs {
		if s.Pod.Name != "" {
			ns := s.Pod.Namespace
			if ns == "" {
				ns = "default"
			}
			named[ns+"/"+s.Pod.Name] = true
		}
	}
	cctx, cancel := r.ctx(ctx)
	resp, err := r.Runtime.ListPodSandbox(cctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{kubepod.LabelManaged: "true"}}})
	cancel()
	if err != nil {
		return nil, criclient.Wrap(err, "list pods")
	}
	var done []string
	var errs []error
	seen := map[string]bool{}
	for _, sb := range resp.Items {
		md := sb.GetMetadata()
		rec, _ := r.readRecord(md.GetUid())
		fromFile := rec != nil && file != "" && rec.File == file
		if !fromFile && !named[md.GetNamespace()+"/"+md.GetName()] {
			continue
		}
		seen[md.GetUid()] = true
		g := grace
		if g < 0 {
			g = GracePeriod(sb.Annotations)
		}
		if err := r.RemovePod(ctx, sb.Id, md.GetUid(), g); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, md.GetNamespace()+"/"+md.GetName())
	}
	if file == "" {
		return done, errors.Join(errs...)
	}
	// Records of the file whose sandbox someone else removed.
	entries, err := os.ReadDir(filepath.Join(r.StateDir, "pods"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("read pod records: %w", err))
	}
	for _, e := range entries {
		if seen[e.Name()] {
			continue
		}
		if rec, err := r.readRecord(e.Name()); err == nil && rec.File == file {
			if err := r.RemoveFiles(e.Name()); err != nil {
				errs = append(errs, err)
				continue
			}
			done = append(done, rec.Namespace+"/"+rec.Name)
		}
	}
	return done, errors.Join(errs...)
}
