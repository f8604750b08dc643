package cri

import (
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the "proto" codec wrapped here
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// kubelet's PLEG relists every second: ListPodSandbox with no filter and
// ListContainers with an empty one (kuberuntime's getKubeletSandboxes and
// getKubeletContainers with all=true). On a settled node both answers are
// the same from one second to the next, and at 500 pods building and
// encoding them is most of the daemon's share of a relist (about 1.5 ms
// and 8,000 allocations of protobuf encoding alone on this kind of
// machine). So the unfiltered answers are built and encoded once per
// generation of the sandbox records (sandbox.Manager.Generation) and the
// bytes are sent as they are.
//
// The codec knows a pre-encoded response by its pointer: a response the
// cache did not hand out, or one replaced by a newer generation while in
// flight, is encoded as usual, so the cache can only save work, never
// send what the response does not say. A cached response is never
// changed after it is stored.

// encodedLists holds the pre-encoded unfiltered list answers.
type encodedLists struct {
	pods encodedList[*runtimeapi.ListPodSandboxResponse]
	ctrs encodedList[*runtimeapi.ListContainersResponse]
}

type encodedList[T proto.Message] struct {
	build sync.Mutex // one build per generation, not one per caller
	cur   atomic.Pointer[encodedMsg[T]]
}

type encodedMsg[T proto.Message] struct {
	gen  uint64
	msg  T
	wire []byte
}

// get returns the answer at generation gen (read by the caller before
// anything of the answer is): the stored one if no change came since, or a
// new one from build.
func (l *encodedList[T]) get(gen uint64, build func() T) T {
	// A newer stored answer is as true as one built now.
	if c := l.cur.Load(); c != nil && c.gen >= gen {
		return c.msg
	}
	l.build.Lock()
	defer l.build.Unlock()
	if c := l.cur.Load(); c != nil && c.gen >= gen {
		return c.msg
	}
	msg := build()
	wire, err := proto.Marshal(msg)
	if err != nil {
		return msg // the codec encodes it as usual, and reports the error
	}
	l.cur.Store(&encodedMsg[T]{gen: gen, msg: msg, wire: wire})
	return msg
}

// wire returns v's encoding if v is the stored answer.
func (l *encodedList[T]) wire(v any) ([]byte, bool) {
	if c := l.cur.Load(); c != nil && v == any(c.msg) {
		return c.wire, true
	}
	return nil, false
}

// listCodec is gRPC's proto codec, less the encoding of answers already
// encoded.
type listCodec struct {
	proto encoding.CodecV2
	lists *encodedLists
}

// Codec is the codec the CRI gRPC server must use (grpc.ForceServerCodecV2)
// for the pre-encoded lists to be sent as encoded; any other codec sends
// the same answers, encoding them each time.
func (s *Server) Codec() encoding.CodecV2 {
	return listCodec{proto: encoding.GetCodecV2("proto"), lists: &s.lists}
}

func (c listCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := c.lists.pods.wire(v)
	if !ok {
		b, ok = c.lists.ctrs.wire(v)
	}
	if ok {
		// A SliceBuffer's Free is a no-op: the stored bytes stay whole
		// for the next caller.
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	return c.proto.Marshal(v)
}

func (c listCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

// Name is the content subtype of the codec it stands in for, so clients
// see no difference.
func (c listCodec) Name() string { return c.proto.Name() }
