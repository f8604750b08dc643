// Package criclient is a client of any CRI runtime (husk, containerd,
// CRI-O) for husk's CLI and tests: dialing an endpoint, one-line errors,
// finding pods and containers by ID prefix or name as crictl does, and the
// client side of the exec, attach and port-forward streams (stream.go).
package criclient

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// DefaultEndpoint is husk's CRI socket.
const DefaultEndpoint = "unix:///run/husk/husk.sock"

// Client is a connection to a CRI runtime.
type Client struct {
	Conn    *grpc.ClientConn
	Runtime runtimeapi.RuntimeServiceClient
	Images  runtimeapi.ImageServiceClient
	// Timeout bounds each call made under Ctx; 0 leaves calls unbounded
	// (exec's default).
	Timeout time.Duration
}

// Dial connects to endpoint (unix://PATH, or a bare absolute path); the
// connection is made lazily, by the first call.
func Dial(endpoint string, timeout time.Duration) (*Client, error) {
	ep := endpoint
	if strings.HasPrefix(ep, "/") {
		ep = "unix://" + ep
	}
	if !strings.HasPrefix(ep, "unix://") {
		return nil, fmt.Errorf("--endpoint %q: only unix:// endpoints are supported", endpoint)
	}
	conn, err := grpc.NewClient(ep, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", ep, err)
	}
	return &Client{Conn: conn, Runtime: runtimeapi.NewRuntimeServiceClient(conn), Images: runtimeapi.NewImageServiceClient(conn), Timeout: timeout}, nil
}

// Close closes the connection.
func (c *Client) Close() { _ = c.Conn.Close() }

// Ctx bounds one CRI call by the client's timeout.
func (c *Client) Ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return CallContext(parent, c.Timeout)
}

// CallContext bounds one CRI call by timeout; 0 leaves it unbounded.
func CallContext(parent context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		return context.WithCancel(parent)
	}
	return context.WithTimeout(parent, timeout)
}

// Error is a CRI call's error as one line: what failed, then the gRPC
// code and the runtime's message, e.g.
// `container status "abc": NotFound: container "abc" not found`.
type Error struct {
	Op  string
	Err error
}

func (e *Error) Error() string {
	st, ok := status.FromError(e.Err)
	if !ok {
		return e.Op + ": " + e.Err.Error()
	}
	// Line breaks folded: a pull tried on several registry hosts reports
	// one line per host.
	return fmt.Sprintf("%s: %s: %s", e.Op, st.Code(), strings.Join(strings.Fields(st.Message()), " "))
}

func (e *Error) Unwrap() error { return e.Err }

// Wrap names the call that failed with err (nil stays nil).
func Wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return &Error{Op: fmt.Sprintf(format, args...), Err: err}
}

// IsNotFound says whether err is the runtime's NotFound.
func IsNotFound(err error) bool { return status.Code(err) == codes.NotFound }

// ShortID is an ID as crictl prints it: 13 characters.
func ShortID(id string) string {
	if len(id) > 13 {
		return id[:13]
	}
	return id
}

// ErrNotFound is the error of a name or ID that matches nothing.
var ErrNotFound = errors.New("not found")

// FindPod resolves NAME|ID as crictl does: an exact ID, a unique ID
// prefix, then a name ("name" or "namespace/name"). Among pods of the same
// name the ready one wins, then the newest.
func (c *Client) FindPod(ctx context.Context, ref string) (*runtimeapi.PodSandbox, error) {
	cctx, cancel := c.Ctx(ctx)
	defer cancel()
	resp, err := c.Runtime.ListPodSandbox(cctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return nil, Wrap(err, "list pods")
	}
	return PickPod(resp.Items, ref)
}

// PickPod is FindPod over a list already read.
func PickPod(items []*runtimeapi.PodSandbox, ref string) (*runtimeapi.PodSandbox, error) {
	var prefixed, named []*runtimeapi.PodSandbox
	ns, name, hasNS := strings.Cut(ref, "/")
	if !hasNS {
		name = ref
	}
	for _, p := range items {
		if p.Id == ref {
			return p, nil
		}
		if strings.HasPrefix(p.Id, ref) {
			prefixed = append(prefixed, p)
		}
		if p.GetMetadata().GetName() == name && (!hasNS || p.GetMetadata().GetNamespace() == ns) {
			named = append(named, p)
		}
	}
	switch {
	case len(prefixed) == 1:
		return prefixed[0], nil
	case len(prefixed) > 1:
		return nil, fmt.Errorf("pod ID prefix %q is ambiguous: %s", ref, podIDs(prefixed))
	case len(named) == 0:
		return nil, fmt.Errorf("pod %q: %w", ref, ErrNotFound)
	}
	sort.Slice(named, func(i, j int) bool {
		ri, rj := named[i].State == runtimeapi.PodSandboxState_SANDBOX_READY, named[j].State == runtimeapi.PodSandboxState_SANDBOX_READY
		if ri != rj {
			return ri
		}
		return named[i].CreatedAt > named[j].CreatedAt
	})
	if len(named) > 1 && named[0].GetMetadata().GetNamespace() != named[1].GetMetadata().GetNamespace() && !hasNS {
		return nil, fmt.Errorf("pod name %q is in several namespaces (%s): use namespace/name or an ID", ref, podIDs(named))
	}
	return named[0], nil
}

func podIDs(ps []*runtimeapi.PodSandbox) string {
	var s []string
	for _, p := range ps {
		s = append(s, ShortID(p.Id)+" ("+p.GetMetadata().GetNamespace()+"/"+p.GetMetadata().GetName()+")")
	}
	return strings.Join(s, ", ")
}

// FindContainer resolves NAME|ID: an exact ID, a unique ID prefix, then a
// container name, optionally "pod/container". Among containers of that
// name the running one wins, then the newest (the latest restart).
func (c *Client) FindContainer(ctx context.Context, ref string) (*runtimeapi.Container, error) {
	cctx, cancel := c.Ctx(ctx)
	defer cancel()
	resp, err := c.Runtime.ListContainers(cctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, Wrap(err, "list containers")
	}
	var pods []*runtimeapi.PodSandbox
	if strings.Contains(ref, "/") {
		pr, err := c.Runtime.ListPodSandbox(cctx, &runtimeapi.ListPodSandboxRequest{})
		if err != nil {
			return nil, Wrap(err, "list pods")
		}
		pods = pr.Items
	}
	return PickContainer(resp.Containers, pods, ref)
}

// PickContainer is FindContainer over lists already read (pods only
// for a "pod/container" ref).
func PickContainer(items []*runtimeapi.Container, pods []*runtimeapi.PodSandbox, ref string) (*runtimeapi.Container, error) {
	podRef, name, hasPod := strings.Cut(ref, "/")
	if !hasPod {
		name = ref
	}
	var prefixed, named []*runtimeapi.Container
	for _, ct := range items {
		if ct.Id == ref {
			return ct, nil
		}
		if strings.HasPrefix(ct.Id, ref) {
			prefixed = append(prefixed, ct)
		}
		if ct.GetMetadata().GetName() == name {
			named = append(named, ct)
		}
	}
	switch {
	case len(prefixed) == 1:
		return prefixed[0], nil
	case len(prefixed) > 1:
		return nil, fmt.Errorf("container ID prefix %q is ambiguous: %s", ref, ctrIDs(prefixed))
	}
	if hasPod {
		pod, err := PickPod(pods, podRef)
		if err != nil {
			return nil, fmt.Errorf("container %q: %w", ref, err)
		}
		var inPod []*runtimeapi.Container
		for _, ct := range named {
			if ct.PodSandboxId == pod.Id {
				inPod = append(inPod, ct)
			}
		}
		named = inPod
	}
	if len(named) == 0 {
		return nil, fmt.Errorf("container %q: %w", ref, ErrNotFound)
	}
	sort.Slice(named, func(i, j int) bool {
		ri, rj := named[i].State == runtimeapi.ContainerState_CONTAINER_RUNNING, named[j].State == runtimeapi.ContainerState_CONTAINER_RUNNING
		if ri != rj {
			return ri
		}
		return named[i].CreatedAt > named[j].CreatedAt
	})
	if len(named) > 1 && named[0].PodSandboxId != named[1].PodSandboxId && named[0].State == named[1].State {
		return nil, fmt.Errorf("container name %q is in several pods (%s): use pod/container or an ID", ref, ctrIDs(named))
	}
	return named[0], nil
}

func ctrIDs(cs []*runtimeapi.Container) string {
	var s []string
	for _, c := range cs {
		s = append(s, ShortID(c.Id)+" (pod "+ShortID(c.PodSandboxId)+")")
	}
	return strings.Join(s, ", ")
}

// ContainerStatus is the status of container id.
func (c *Client) ContainerStatus(ctx context.Context, id string) (*runtimeapi.ContainerStatus, error) {
	return ContainerStatusOf(ctx, c.Runtime, c.Timeout, id)
}

// StatusReader is the call ContainerStatusOf makes: a RuntimeService
// client has it, and so does a test's fake.
type StatusReader interface {
	ContainerStatus(ctx context.Context, in *runtimeapi.ContainerStatusRequest, opts ...grpc.CallOption) (*runtimeapi.ContainerStatusResponse, error)
}

// ContainerStatusOf is the status of container id, the call bounded by
// timeout, for callers that hold the runtime behind an interface.
func ContainerStatusOf(ctx context.Context, rt StatusReader, timeout time.Duration, id string) (*runtimeapi.ContainerStatus, error) {
	cctx, cancel := CallContext(ctx, timeout)
	defer cancel()
	resp, err := rt.ContainerStatus(cctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		return nil, Wrap(err, "status of container %s", ShortID(id))
	}
	return resp.Status, nil
}

// PreviousAttempt is the container of the same name and pod with the
// highest attempt below ct's.
func (c *Client) PreviousAttempt(ctx context.Context, ct *runtimeapi.Container) (*runtimeapi.Container, error) {
	cctx, cancel := c.Ctx(ctx)
	defer cancel()
	resp, err := c.Runtime.ListContainers(cctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: ct.PodSandboxId}})
	if err != nil {
		return nil, Wrap(err, "list containers of pod %s", ShortID(ct.PodSandboxId))
	}
	var best *runtimeapi.Container
	for _, o := range resp.Containers {
		if o.GetMetadata().GetName() != ct.GetMetadata().GetName() || o.GetMetadata().GetAttempt() >= ct.GetMetadata().GetAttempt() {
			continue
		}
		if best == nil || o.GetMetadata().GetAttempt() > best.GetMetadata().GetAttempt() {
			best = o
		}
	}
	if best == nil {
		return nil, fmt.Errorf("container %s (%s, restart %d) has no previous restart left", ShortID(ct.Id), ct.GetMetadata().GetName(), ct.GetMetadata().GetAttempt())
	}
	return best, nil
}
