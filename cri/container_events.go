package cri

import (
	"errors"

	"github.com/husk-runtime/husk/sandbox"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// GetContainerEvents streams lifecycle events for kubelet's evented PLEG:
// CONTAINER_CREATED, _STARTED, _STOPPED and _DELETED, for containers and,
// as containerd does, for sandboxes (container_id is then the sandbox id).
// Each event carries its created_at, the pod's sandbox status and the
// statuses of the pod's containers at that moment, which kubelet turns
// into the pod status without a relist. The stream lasts until the client
// goes; a client that falls sandbox.EventBuffer events behind is cut off
// with ResourceExhausted rather than slowing the runtime, and must
// resubscribe and relist (kubelet does both on any stream error). The
// response headers go out once the subscription is in place, so a client
// that waits for them (stream.Header()) misses no later event.
func (s *Server) GetContainerEvents(req *runtimeapi.GetEventsRequest, stream grpc.ServerStreamingServer[runtimeapi.ContainerEventResponse]) error {
	events, why := s.Sandboxes.Subscribe(stream.Context())
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	for ev := range events {
		if err := stream.Send(containerEvent(ev)); err != nil {
			return err
		}
	}
	err := why()
	if errors.Is(err, sandbox.ErrSlowSubscriber) {
		return status.Error(codes.ResourceExhausted, err.Error())
	}
	return status.FromContextError(err).Err()
}

func containerEvent(ev sandbox.Event) *runtimeapi.ContainerEventResponse {
	resp := &runtimeapi.ContainerEventResponse{
		ContainerId:        ev.ID,
		ContainerEventType: ev.Type,
		CreatedAt:          ev.CreatedAt.UnixNano(),
		PodSandboxStatus:   podSandboxStatus(ev.Pod),
		ContainersStatuses: make([]*runtimeapi.ContainerStatus, 0, len(ev.Containers)),
	}
	for _, c := range ev.Containers {
		resp.ContainersStatuses = append(resp.ContainersStatuses, containerStatus(c))
	}
	return resp
}
