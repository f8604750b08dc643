package podrun

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/husk-runtime/husk/atomicfile"
	"github.com/husk-runtime/husk/kubepod"
	"github.com/husk-runtime/husk/mount"
	"google.golang.org/protobuf/encoding/protojson"
)

// podRecord is what husk pod run keeps about a pod it started, at
// <state dir>/pods/<uid>/pod.json: enough for `husk pod rm` to remove the
// directories it made, which the runtime knows nothing of, for `husk pod
// down` to find the pods of a manifest, and for `husk pod generate` to
// read back the CRI configs the pod was made from (the CRI's status calls
// do not return command, env, ports or security contexts).
type podRecord struct {
	UID          string `json:"uid"`
	Name         string `json:"name"`
	Namespace    string `json:"namespace"`
	SandboxID    string `json:"sandboxId,omitempty"`
	LogDirectory string `json:"logDirectory"`
	// Source is the document ("Deployment/web"); File the manifest's
	// absolute path, empty for stdin.
	Source  string    `json:"source,omitempty"`
	File    string    `json:"file,omitempty"`
	Created time.Time `json:"created"`
	// Sandbox and Containers are the configs sent (protojson), the
	// containers' as of their first attempt.
	Sandbox    json.RawMessage   `json:"sandbox,omitempty"`
	Containers []containerRecord `json:"containers,omitempty"`
}

// containerRecord is one container's config as husk pod run sent it,
// and what the config does not hold of it.
type containerRecord struct {
	Name        string               `json:"name"`
	Kind        string               `json:"kind"` // init, sidecar or app (kubepod.LabelContainerKind)
	Config      json.RawMessage      `json:"config"`
	Supervision *kubepod.Supervision `json:"supervision,omitempty"`
}

func newRecord(plan *kubepod.Plan, file string) (podRecord, error) {
	rec := podRecord{UID: plan.UID, Name: plan.Name, Namespace: plan.Namespace, LogDirectory: plan.Sandbox.LogDirectory,
		Source: plan.Origin, File: file, Created: time.Now()}
	var err error
	if rec.Sandbox, err = protojson.Marshal(plan.Sandbox); err != nil {
		return rec, fmt.Errorf("record of pod %s/%s: %w", plan.Namespace, plan.Name, err)
	}
	for _, c := range append(append([]kubepod.Container{}, plan.InitContainers...), plan.Containers...) {
		cfg := c.Config(0, "")
		b, err := protojson.Marshal(cfg)
		if err != nil {
			return rec, fmt.Errorf("record of pod %s/%s: %w", plan.Namespace, plan.Name, err)
		}
		rec.Containers = append(rec.Containers, containerRecord{Name: c.Name, Kind: cfg.Labels[kubepod.LabelContainerKind], Config: b, Supervision: c.Supervision()})
	}
	return rec, nil
}

func (r *Runner) writeRecord(rec podRecord) error {
	dir := r.podDir(rec.UID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state dir of pod %s/%s: %w", rec.Namespace, rec.Name, err)
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	// Atomic (house rule 4): a crash mid-write must not leave a record
	// that `husk pod rm` cannot read, with the pod's dirs it names.
	if err := atomicfile.Write(filepath.Join(dir, "pod.json"), b, 0o600); err != nil {
		return fmt.Errorf("write record of pod %s/%s: %w", rec.Namespace, rec.Name, err)
	}
	return nil
}

func (r *Runner) readRecord(uid string) (*podRecord, error) {
	b, err := os.ReadFile(filepath.Join(r.podDir(uid), "pod.json"))
	if err != nil {
		return nil, err
	}
	var rec podRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("record of pod %s: %w", uid, err)
	}
	return &rec, nil
}

// RemoveFiles removes what husk pod run made for a pod outside the
// runtime: its state dir (emptyDir volumes included) and its log dir.
func (r *Runner) RemoveFiles(uid string) error {
	if uid == "" || strings.ContainsAny(uid, "/") || uid == "." || uid == ".." {
		return nil
	}
	rec, err := r.readRecord(uid)
	if errors.Is(err, os.ErrNotExist) {
		return nil // not a pod of husk pod run (or of another --state-dir)
	}
	var errs []error
	if err != nil {
		errs = append(errs, err)
	} else if rec.LogDirectory != "" && filepath.Base(rec.LogDirectory) == rec.Namespace+"_"+rec.Name+"_"+rec.UID {
		if err := os.RemoveAll(rec.LogDirectory); err != nil {
			errs = append(errs, fmt.Errorf("remove log dir of pod %s/%s: %w", rec.Namespace, rec.Name, err))
		}
	}
	// Memory emptyDirs are tmpfs mounts in there: unmounted first, or the
	// removal would fail on them and leave them mounted.
	if err := mount.UnmountAll(r.podDir(uid)); err != nil {
		errs = append(errs, fmt.Errorf("remove state dir of pod %s: %w", uid, err))
	} else if err := os.RemoveAll(r.podDir(uid)); err != nil {
		errs = append(errs, fmt.Errorf("remove state dir of pod %s: %w", uid, err))
	}
	return errors.Join(errs...)
}
