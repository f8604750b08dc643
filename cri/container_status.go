package cri

import (
	"context"

	"github.com/husk-runtime/husk/sandbox"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerStatus reports a container. CRI: an unknown id is NotFound;
// exited containers carry finished_at, exit_code and a reason kubelet
// understands (Completed, Error, OOMKilled).
func (s *Server) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("ContainerStatus: container_id is required")
	}
	c, err := s.Sandboxes.Container(ctx, req.GetContainerId())
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &runtimeapi.ContainerStatusResponse{Status: containerStatus(c)}
	if req.GetVerbose() {
		// "config" carries the stdio settings under the key and names
		// containerd uses, so that clients (husk attach) can tell why an
		// attach gets no input or no terminal.
		resp.Info = map[string]string{"info": verboseInfo(map[string]any{"pid": c.Pid, "sandboxID": c.PodID,
			"config": map[string]bool{"stdin": c.Config.GetStdin(), "stdin_once": c.Config.GetStdinOnce(), "tty": c.Config.GetTty()}})}
	}
	return resp, nil
}

// containerStatus is the CRI status of a container, also sent with
// GetContainerEvents.
func containerStatus(c sandbox.ContainerView) *runtimeapi.ContainerStatus {
	cfg := c.Config
	st := &runtimeapi.ContainerStatus{
		Id:          c.ID,
		Metadata:    cfg.GetMetadata(),
		State:       containerState(c.State),
		CreatedAt:   c.CreatedAt.UnixNano(),
		Image:       &runtimeapi.ImageSpec{Image: c.ImageName, UserSpecifiedImage: c.ImageRef},
		ImageRef:    c.RepoRef,
		ImageId:     c.ImageID,
		Labels:      cfg.GetLabels(),
		Annotations: cfg.GetAnnotations(),
		Mounts:      statusMounts(cfg.GetMounts(), c.VolumeImageIDs),
		LogPath:     c.LogPath,
		Reason:      c.Reason,
	}
	// What the process runs as and the limits in force: kubelet gates
	// supplemental-groups policy and in-place resize on these.
	u := &runtimeapi.LinuxContainerUser{Uid: int64(c.User.UID), Gid: int64(c.User.GID)}
	for _, g := range c.User.AdditionalGids {
		u.SupplementalGroups = append(u.SupplementalGroups, int64(g))
	}
	st.User = &runtimeapi.ContainerUser{Linux: u}
	if r := cfg.GetLinux().GetResources(); r != nil {
		st.Resources = &runtimeapi.ContainerResources{Linux: r}
	}
	if !c.StartedAt.IsZero() {
		st.StartedAt = c.StartedAt.UnixNano()
	}
	if c.Exit != nil {
		st.FinishedAt = c.Exit.FinishedAt.UnixNano()
		st.ExitCode = int32(c.Exit.Code)
		if c.Reason == sandbox.ReasonShimDied {
			st.Message = "the pod's husk-shim died; the container's exit status is unknown"
		}
	}
	return st
}

func containerState(s sandbox.ContainerState) runtimeapi.ContainerState {
	switch s {
	case sandbox.ContainerCreated:
		return runtimeapi.ContainerState_CONTAINER_CREATED
	case sandbox.ContainerRunning:
		return runtimeapi.ContainerState_CONTAINER_RUNNING
	case sandbox.ContainerExited:
		return runtimeapi.ContainerState_CONTAINER_EXITED
	}
	return runtimeapi.ContainerState_CONTAINER_UNKNOWN
}

// statusMounts are the container's mounts as kubelet sent them, with each
// image volume's resolved image id as its image_ref (KEP-5365: kubelet
// reports it as the volume's ImageVolumeStatus.imageRef).
func statusMounts(mounts []*runtimeapi.Mount, ids map[string]string) []*runtimeapi.Mount {
	if len(ids) == 0 {
		return mounts
	}
	out := make([]*runtimeapi.Mount, len(mounts))
	for i, m := range mounts {
		id, ok := ids[m.GetContainerPath()]
		if !ok || m.GetImage() == nil {
			out[i] = m
			continue
		}
		mm := proto.Clone(m).(*runtimeapi.Mount)
		mm.Image.ImageRef = id
		out[i] = mm
	}
	return out
}
