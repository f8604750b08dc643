package sandbox

import (
	"context"
	"time"

	"github.com/husk-runtime/husk/shim"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Shim is what the manager asks of one pod's shim (the whole contract is
// shim/api.go). *shim.Client is the real one; the rollback unit tests put
// a fake here, to fail each step of a pod's or container's making in turn.
type Shim interface {
	Version(ctx context.Context) error
	State(ctx context.Context) ([]shim.Container, error)
	Run(ctx context.Context, id, bundle, logPath, exitFile string) (int, error)
	CreateWithStdin(ctx context.Context, id, bundle, logPath, exitFile string, stdin bool) (int, error)
	Start(ctx context.Context, id string) error
	Kill(ctx context.Context, id string, sig int) error
	Wait(ctx context.Context, id string, timeout time.Duration) (*shim.ExitStatus, bool, error)
	Exec(ctx context.Context, id string, proc *specs.Process, timeout time.Duration) (*shim.ExecResult, error)
	ExecStream(ctx context.Context, id string, proc *specs.Process, stdin bool) (*shim.Stream, error)
	Attach(ctx context.Context, id string, stdin, stdout, stderr bool) (*shim.Stream, error)
	Update(ctx context.Context, id string, res *specs.LinuxResources) error
	ReopenLog(ctx context.Context, id string) error
	Delete(ctx context.Context, id string) error
	Shutdown(ctx context.Context) error
}

// Shims starts a pod's shim and reaches one that runs: the manager's one
// way to a shim, so a test can stand in for every one.
type Shims interface {
	// Launch starts the shim of a new pod, returning it and its pid.
	Launch(ctx context.Context, cfg shim.LaunchConfig) (Shim, int, error)
	// Dial is the shim serving socket (a pod's ShimSocket); it connects
	// per call, so a shim that is gone fails that call only.
	Dial(socket string) Shim
}

// processShims are real husk-shim processes.
type processShims struct{}

func (processShims) Launch(ctx context.Context, cfg shim.LaunchConfig) (Shim, int, error) {
	c, pid, err := shim.Launch(ctx, cfg)
	if err != nil {
		return nil, 0, err
	}
	return c, pid, nil
}

func (processShims) Dial(socket string) Shim { return &shim.Client{Socket: socket} }
