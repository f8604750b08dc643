// Package image pulls container images from registries, keeps their blobs
// and unpacked layers under husk's root, and mounts them as container root
// filesystems.
//
// On-disk layout (see DESIGN.md "Where state lives"):
//
//	<Root>/content/blobs/sha256/<hex>  manifests, indexes, configs and layer blobs, verified by digest
//	<Root>/layers/<n>/                 unpacked layers (overlay lower dirs)
//	<Root>/layers/index.json           chain id -> <n>
//	<Root>/images/<id hex>.json        one record per image
//
// Layer blobs are kept as distributed (compressed) beside the unpacked
// layers, so that an export writes an image out with the digests it was
// pulled with; that costs each layer's compressed size again on disk.
package image

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/husk-runtime/husk/errdefs"
	"github.com/husk-runtime/husk/layout"
)

var (
	// ErrNotFound is returned (wrapped) when no image matches a reference.
	ErrNotFound = errdefs.New(errdefs.ErrNotFound, "image not found")
	// ErrInvalidReference is returned (wrapped) when a reference cannot be parsed.
	ErrInvalidReference = errdefs.New(errdefs.ErrInvalidArgument, "invalid image reference")
	// ErrAmbiguous is returned (wrapped) when an id prefix matches several images.
	ErrAmbiguous = errdefs.New(errdefs.ErrInvalidArgument, "ambiguous image id prefix")
)

// Config says where the store keeps its state and how registries are reached.
type Config struct {
	// Root is the persistent root, e.g. /var/lib/husk. The store uses
	// Root/content, Root/layers and Root/images.
	Root string
	// ConfigPath is a containerd-style certs.d directory
	// (registry.config_path), e.g. /etc/husk/certs.d. It may not exist.
	ConfigPath string
	// Insecure lists extra registry hosts (host[:port]) reached over plain HTTP.
	Insecure []string
	// StallTimeout abandons a pull that receives nothing for this long
	// (0: DefaultStallTimeout).
	StallTimeout time.Duration
	// AuthFile is a docker-style config.json (registry.auth_file) whose
	// "auths" give credentials to pulls whose request carries none. It is
	// read at each such pull and may not exist.
	AuthFile string
	// Logger receives the store's logs; slog.Default() when nil.
	Logger *slog.Logger
	// Recorder is told of every pull and collection (the daemon's
	// metrics); nil records nothing.
	Recorder Recorder
	// FlushDelay is how long after a layer is unpacked the store waits
	// for it to reach the disk (flush.go); 0: DefaultFlushDelay.
	FlushDelay time.Duration
	// BootID stands for the kernel's boot id (flush.go); "" reads it.
	// Tests set it to play a reboot.
	BootID string
}

// Recorder is what the store reports for metrics.
type Recorder interface {
	// PullFinished: one pull of an image from registry (the reference's
	// host), the layer bytes it received, its duration and outcome.
	PullFinished(registry string, bytes int64, took time.Duration, err error)
	// Collected: one collection and the layers and blobs it removed.
	Collected(layers, blobs int)
}

type nopRecorder struct{}

func (nopRecorder) PullFinished(string, int64, time.Duration, error) {}
func (nopRecorder) Collected(int, int)                               {}

// Image is the store's view of one image.
type Image struct {
	ID          string   // "sha256:<hex>" of the config blob
	RepoTags    []string // e.g. "docker.io/library/busybox:latest"
	RepoDigests []string // e.g. "docker.io/library/busybox@sha256:<manifest digest>"
	// Size is the sum of the layer sizes as distributed (compressed sizes
	// from the manifest), which is what kubelet compares against its image
	// GC thresholds in containerd too.
	Size   uint64
	Config v1.Config
	// Layers are the absolute paths of the unpacked layer directories,
	// lowest first.
	Layers []string
	Pinned bool
}

// Auth mirrors CRI's AuthConfig.
type Auth struct {
	Username      string
	Password      string
	Auth          string // base64 "user:password"
	IdentityToken string
	RegistryToken string
}

// Store is the image store. It is safe for concurrent use.
type Store struct {
	log        *slog.Logger
	root       string
	configPath string
	insecure   map[string]bool
	stall      time.Duration
	authFile   string

	contentDir string
	layersDir  string
	imagesDir  string

	// mu guards the records and the layer index.
	mu      sync.Mutex
	images  map[string]*record // by id
	byTag   map[string]string  // normalized tag ref -> id
	byDgst  map[string]string  // name@digest -> id
	layers  layerIndex
	chainMu keyedMutex     // serializes unpacking of one chain id
	holds   map[string]int // chain ids and blobs of pulls in progress
	// inUse lists the layer dirs that containers use (SetInUse).
	inUse func() []string

	transMu    sync.Mutex
	transports map[string]*http.Transport

	// progress follows the pulls in progress for watchers (progress.go).
	progress progressTracker
	rec      Recorder

	// What is put in place before it reaches the disk (flush.go).
	boot       string
	flushDelay time.Duration
	flushMu    sync.Mutex        // one flush at a time
	flushTimer *time.Timer       // guarded by mu
	marks      map[string]uint64 // guarded by mu
	markSeq    uint64            // guarded by mu
}

// Open loads the store's records from cfg.Root, creating the directories it
// needs and removing whatever a crash left half made.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Root == "" {
		return nil, errors.New("image store: empty root")
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("image store root %q: %w", cfg.Root, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Store{
		log:        log,
		root:       root,
		configPath: cfg.ConfigPath,
		insecure:   make(map[string]bool),
		stall:      cfg.StallTimeout,
		authFile:   cfg.AuthFile,
		contentDir: filepath.Join(root, "content", "blobs", "sha256"),
		layersDir:  filepath.Join(root, "layers"),
		imagesDir:  filepath.Join(root, "images"),
		images:     make(map[string]*record),
		byTag:      make(map[string]string),
		byDgst:     make(map[string]string),
		rec:        cfg.Recorder,
		boot:       cfg.BootID,
		flushDelay: cfg.FlushDelay,
	}
	if s.rec == nil {
		s.rec = nopRecorder{}
	}
	if s.flushDelay <= 0 {
		s.flushDelay = DefaultFlushDelay
	}
	if s.boot == "" {
		if s.boot, err = layout.BootID(); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	for _, h := range cfg.Insecure {
		s.insecure[h] = true
	}
	for _, d := range []string{s.contentDir, s.layersDir, s.imagesDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	if err := s.loadLayers(ctx); err != nil {
		return nil, err
	}
	if err := s.loadRecords(ctx); err != nil {
		return nil, err
	}
	if err := s.cleanContentTemps(); err != nil {
		return nil, err
	}
	if err := s.cleanIdmapDir(); err != nil {
		return nil, err
	}
	slog.DebugContext(ctx, "image store opened", "root", root, "images", len(s.images), "layers", len(s.layers.Layers))
	return s, nil
}
