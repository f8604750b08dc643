package main

// The plumbing the CRI client commands share: --endpoint and --timeout,
// dialing, one-line errors, -o table|json|yaml, and finding pods and
// containers by ID prefix or name, as crictl does.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"sigs.k8s.io/yaml"
)

const defaultEndpoint = "unix:///run/husk/husk.sock"

// clientFlags are the persistent flags of every CRI client command.
var clientFlags struct {
	endpoint string
	timeout  time.Duration
}

// addClientFlags registers --endpoint and --timeout on root, for every
// command that talks CRI.
func addClientFlags(f *pflag.FlagSet) {
	f.StringVar(&clientFlags.endpoint, "endpoint", defaultEndpoint, "CRI endpoint of the runtime (husk's or containerd's socket, e.g. unix:///run/containerd/containerd.sock)")
	f.DurationVar(&clientFlags.timeout, "timeout", 0, "timeout of each CRI call (default 2m for pod run, 30m for image import/export, none for pull, 10s otherwise)")
}

// criClient is a connection to a CRI runtime.
type criClient struct {
	conn    *grpc.ClientConn
	rt      runtimeapi.RuntimeServiceClient
	img     runtimeapi.ImageServiceClient
	timeout time.Duration
}

// dial connects to --endpoint; def is the command's default call timeout.
func dial(def time.Duration) (*criClient, error) {
	ep := clientFlags.endpoint
	if strings.HasPrefix(ep, "/") {
		ep = "unix://" + ep
	}
	if !strings.HasPrefix(ep, "unix://") {
		return nil, fmt.Errorf("--endpoint %q: only unix:// endpoints are supported", clientFlags.endpoint)
	}
	conn, err := grpc.NewClient(ep, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", ep, err)
	}
	t := clientFlags.timeout
	if t == 0 {
		t = def
	}
	return &criClient{conn: conn, rt: runtimeapi.NewRuntimeServiceClient(conn), img: runtimeapi.NewImageServiceClient(conn), timeout: t}, nil
}

func (c *criClient) Close() { _ = c.conn.Close() }

// ctx bounds one CRI call by the timeout. A timeout of 0 (exec's default)
// leaves the call unbounded.
// dialCall is dial for a command that makes its calls under one timeout:
// the client, the context of its calls, and done, which ends both.
func dialCall(parent context.Context, def time.Duration) (*criClient, context.Context, func(), error) {
	c, err := dial(def)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := c.ctx(parent)
	return c, ctx, func() { cancel(); c.Close() }, nil
}

func (c *criClient) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	if c.timeout <= 0 {
		return context.WithCancel(parent)
	}
	return context.WithTimeout(parent, c.timeout)
}

// rpcError is a CRI call's error as one line: what failed, then the gRPC
// code and the runtime's message, e.g.
// `container status "abc": NotFound: container "abc" not found`.
type rpcError struct {
	op  string
	err error
}

func (e *rpcError) Error() string {
	st, ok := status.FromError(e.err)
	if !ok {
		return e.op + ": " + e.err.Error()
	}
	msg := st.Message()
	if st.Code().String() == "Unavailable" {
		msg += " (is the runtime running at " + clientFlags.endpoint + "? see --endpoint)"
	}
	return fmt.Sprintf("%s: %s: %s", e.op, st.Code(), msg)
}

func (e *rpcError) Unwrap() error { return e.err }

func rpcErr(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return &rpcError{op: fmt.Sprintf(format, args...), err: err}
}

// Output formats of list and inspect commands.
const (
	outTable = "table"
	outJSON  = "json"
	outYAML  = "yaml"
)

func addOutputFlag(cmd *cobra.Command, p *string, def string, allowed ...string) {
	cmd.Flags().StringVarP(p, "output", "o", def, "output format: "+strings.Join(allowed, ", "))
}

func checkOutput(o string, allowed ...string) error {
	for _, a := range allowed {
		if o == a {
			return nil
		}
	}
	return fmt.Errorf("-o %q: want one of %s", o, strings.Join(allowed, ", "))
}

// protoJSON renders a CRI message the way crictl does (camelCase fields).
func protoJSON(m proto.Message) (json.RawMessage, error) {
	b, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", m, err)
	}
	return b, nil
}

// printProto writes the CRI message m as indented JSON or YAML.
func printProto(w io.Writer, format string, m proto.Message) error {
	j, err := protoJSON(m)
	if err != nil {
		return err
	}
	return printStructured(w, format, j)
}

// printStructured writes v (JSON-encodable; CRI messages go through
// protoJSON first) as indented JSON or YAML.
func printStructured(w io.Writer, format string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	if format == outYAML {
		if b, err = yaml.JSONToYAML(b); err != nil {
			return fmt.Errorf("encode output as YAML: %w", err)
		}
		_, err = w.Write(b)
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func shortID(id string) string {
	if len(id) > 13 {
		return id[:13]
	}
	return id
}

// ago renders a CRI timestamp (ns since the epoch) as crictl does.
func ago(ns int64) string {
	if ns == 0 {
		return "-"
	}
	return humanDuration(time.Since(time.Unix(0, ns))) + " ago"
}

func humanDuration(d time.Duration) string {
	switch s := int(d.Seconds()); {
	case s < 1:
		return "Less than a second"
	case s == 1:
		return "1 second"
	case s < 60:
		return fmt.Sprintf("%d seconds", s)
	}
	switch m := int(d.Minutes()); {
	case m == 1:
		return "About a minute"
	case m < 60:
		return fmt.Sprintf("%d minutes", m)
	}
	switch h := int(d.Hours() + 0.5); {
	case h == 1:
		return "About an hour"
	case h < 48:
		return fmt.Sprintf("%d hours", h)
	case h < 24*7*2:
		return fmt.Sprintf("%d days", h/24)
	default:
		return fmt.Sprintf("%d weeks", h/24/7)
	}
}

var errNotFound = errors.New("not found")

// findPod resolves NAME|ID as crictl does: an exact ID, a unique ID
// prefix, then a name ("name" or "namespace/name"). Among pods of the same
// name the ready one wins, then the newest.
func (c *criClient) findPod(ctx context.Context, ref string) (*runtimeapi.PodSandbox, error) {
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.rt.ListPodSandbox(cctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return nil, rpcErr(err, "list pods")
	}
	return pickPod(resp.Items, ref)
}

func pickPod(items []*runtimeapi.PodSandbox, ref string) (*runtimeapi.PodSandbox, error) {
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
		return nil, fmt.Errorf("pod %q: %w", ref, errNotFound)
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
		s = append(s, shortID(p.Id)+" ("+p.GetMetadata().GetNamespace()+"/"+p.GetMetadata().GetName()+")")
	}
	return strings.Join(s, ", ")
}

// findContainer resolves NAME|ID: an exact ID, a unique ID prefix, then a
// container name, optionally "pod/container". Among containers of that
// name the running one wins, then the newest (the latest restart).
func (c *criClient) findContainer(ctx context.Context, ref string) (*runtimeapi.Container, error) {
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.rt.ListContainers(cctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, rpcErr(err, "list containers")
	}
	var pods []*runtimeapi.PodSandbox
	if strings.Contains(ref, "/") {
		pr, err := c.rt.ListPodSandbox(cctx, &runtimeapi.ListPodSandboxRequest{})
		if err != nil {
			return nil, rpcErr(err, "list pods")
		}
		pods = pr.Items
	}
	return pickContainer(resp.Containers, pods, ref)
}

func pickContainer(items []*runtimeapi.Container, pods []*runtimeapi.PodSandbox, ref string) (*runtimeapi.Container, error) {
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
		pod, err := pickPod(pods, podRef)
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
		return nil, fmt.Errorf("container %q: %w", ref, errNotFound)
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
		s = append(s, shortID(c.Id)+" (pod "+shortID(c.PodSandboxId)+")")
	}
	return strings.Join(s, ", ")
}

func warnf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "warning: "+format+"\n", args...)
}
