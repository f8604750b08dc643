package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Client talks to one pod's shim.
type Client struct {
	Socket string
}

// call sends one request on a fresh connection. A connection per call keeps
// the shim's server trivial and lets a long wait or exec run beside others.
func (c *Client) call(ctx context.Context, req Request) (*Response, error) {
	req.Version = Version
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Socket)
	if err != nil {
		return nil, fmt.Errorf("connect to shim %s: %w", c.Socket, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, fmt.Errorf("send %s to shim %s: %w", req.Method, c.Socket, err)
	}
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("read %s answer from shim %s: %w", req.Method, c.Socket, err)
	}
	if resp.Error != "" {
		return nil, &Error{Code: resp.Code, Message: resp.Error}
	}
	return &resp, nil
}

// Version checks that the shim speaks this daemon's API version.
func (c *Client) Version(ctx context.Context) error {
	_, err := c.call(ctx, Request{Method: MethodVersion})
	return err
}

// Create creates a container from bundle/config.json; its init waits for Start.
func (c *Client) Create(ctx context.Context, id, bundle, logPath, exitFile string) (int, error) {
	r, err := c.call(ctx, Request{Method: MethodCreate, ID: id, Bundle: bundle, LogPath: logPath, ExitFile: exitFile})
	if err != nil {
		return 0, err
	}
	return r.Pid, nil
}

// Run creates a container and starts it at once.
func (c *Client) Run(ctx context.Context, id, bundle, logPath, exitFile string) (int, error) {
	r, err := c.call(ctx, Request{Method: MethodCreate, ID: id, Bundle: bundle, LogPath: logPath, ExitFile: exitFile, Start: true})
	if err != nil {
		return 0, err
	}
	return r.Pid, nil
}

// Start starts a created container.
func (c *Client) Start(ctx context.Context, id string) error {
	_, err := c.call(ctx, Request{Method: MethodStart, ID: id})
	return err
}

// Kill signals a container's init.
func (c *Client) Kill(ctx context.Context, id string, sig int) error {
	_, err := c.call(ctx, Request{Method: MethodKill, ID: id, Signal: sig})
	return err
}

// Wait waits up to timeout (0: forever) for the container to exit.
func (c *Client) Wait(ctx context.Context, id string, timeout time.Duration) (*ExitStatus, bool, error) {
	r, err := c.call(ctx, Request{Method: MethodWait, ID: id, Timeout: timeout})
	if err != nil {
		return nil, false, err
	}
	return r.Exit, r.Exited, nil
}

// Exec runs proc in the container and waits for it, up to timeout.
func (c *Client) Exec(ctx context.Context, id string, proc *specs.Process, timeout time.Duration) (*ExecResult, error) {
	r, err := c.call(ctx, Request{Method: MethodExec, ID: id, Process: proc, Timeout: timeout})
	if err != nil {
		return nil, err
	}
	return r.ExecResult, nil
}

// Delete kills what is left of the container and destroys it.
func (c *Client) Delete(ctx context.Context, id string) error {
	_, err := c.call(ctx, Request{Method: MethodDelete, ID: id})
	return err
}

// State lists the shim's containers.
func (c *Client) State(ctx context.Context) ([]Container, error) {
	r, err := c.call(ctx, Request{Method: MethodState})
	if err != nil {
		return nil, err
	}
	return r.Containers, nil
}

// ReopenLog makes the shim write the container's log to a fresh file.
func (c *Client) ReopenLog(ctx context.Context, id string) error {
	_, err := c.call(ctx, Request{Method: MethodReopen, ID: id})
	return err
}

// Update applies new resource limits to a running container.
func (c *Client) Update(ctx context.Context, id string, res *specs.LinuxResources) error {
	_, err := c.call(ctx, Request{Method: MethodUpdate, ID: id, Resources: res})
	return err
}

// Shutdown asks the shim to exit; it refuses while a container runs.
func (c *Client) Shutdown(ctx context.Context) error {
	_, err := c.call(ctx, Request{Method: MethodShutdown})
	return err
}
