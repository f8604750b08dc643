package huskrpc

import (
	"context"
	"errors"
	"io"

	huskapi "github.com/husk-runtime/husk/api/v1"
	"github.com/husk-runtime/husk/image"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// PullProgress follows one pull in the daemon, whoever started it: the
// first event says where it is (or that none is in progress), then one
// event per change until the pull ends. It only watches; the pull is
// PullImage's.
func (s *Server) PullProgress(req *huskapi.PullProgressRequest, stream huskapi.Images_PullProgressServer) error {
	if req.GetRef() == "" {
		return status.Error(codes.InvalidArgument, "PullProgress: ref is required")
	}
	w, err := s.Images.WatchPull(req.GetRef())
	if err != nil {
		return toStatus(err)
	}
	defer w.Close()
	ctx := stream.Context()
	for {
		p, err := w.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			// The client went away or gave up: nothing failed here.
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return status.FromContextError(err).Err()
			}
			return toStatus(err)
		}
		if err := stream.Send(progressEvent(p)); err != nil {
			return err
		}
	}
}

func progressEvent(p image.PullProgress) *huskapi.PullProgressEvent {
	ev := &huskapi.PullProgressEvent{Ref: p.Ref, ImageId: p.ImageID}
	switch p.State {
	case image.PullNotStarted:
		ev.State = huskapi.PullState_PULL_STATE_NOT_STARTED
	case image.PullResolving:
		ev.State = huskapi.PullState_PULL_STATE_RESOLVING
	case image.PullPulling:
		ev.State = huskapi.PullState_PULL_STATE_PULLING
	case image.PullDone:
		ev.State = huskapi.PullState_PULL_STATE_DONE
	case image.PullFailed:
		ev.State = huskapi.PullState_PULL_STATE_FAILED
	}
	if p.Err != nil {
		// As PullImage reports it: the cri package's status message is
		// the core error's text.
		ev.Error = p.Err.Error()
	}
	for _, l := range p.Layers {
		ev.Layers = append(ev.Layers, &huskapi.LayerProgress{
			Digest: l.Digest, TotalBytes: l.Total, DownloadedBytes: l.Downloaded, State: layerState(l.State),
		})
	}
	return ev
}

func layerState(st image.LayerState) huskapi.LayerState {
	switch st {
	case image.LayerWaiting:
		return huskapi.LayerState_LAYER_STATE_WAITING
	case image.LayerDownloading:
		return huskapi.LayerState_LAYER_STATE_DOWNLOADING
	case image.LayerWaitingForOtherPull:
		return huskapi.LayerState_LAYER_STATE_WAITING_FOR_OTHER_PULL
	case image.LayerVerifying:
		return huskapi.LayerState_LAYER_STATE_VERIFYING
	case image.LayerUnpacking:
		return huskapi.LayerState_LAYER_STATE_UNPACKING
	case image.LayerDone:
		return huskapi.LayerState_LAYER_STATE_DONE
	case image.LayerAlreadyPresent:
		return huskapi.LayerState_LAYER_STATE_ALREADY_PRESENT
	}
	return huskapi.LayerState_LAYER_STATE_UNSPECIFIED
}
