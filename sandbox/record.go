package sandbox

import (
	"time"

	"github.com/husk-runtime/husk/shim"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PodState is where a pod is, as its record stores it. The transitions the
// code makes, each through updatePod (state and record together), but for
// the one recovery makes in memory at start after a reboot (re-recorded
// by the next start, which finds the shim gone):
//
//	creating --RunPodSandbox done--> ready --StopPodSandbox, the shim's death--> notready
//	creating --rollback that could not delete the infra--> notready
//	creating --the daemon killed mid-way--> (removed by recovery or removal)
//	any --RemovePodSandbox--> (gone)
//
// A ready pod whose infra exited reads as NOTREADY without a new state
// (infraExit, from the shim's exit.json). CRI sees ready as READY and the
// rest as NOTREADY.
type PodState string

// The pod states.
const (
	PodCreating PodState = "creating" // half-made: recovery removes it
	PodReady    PodState = "ready"
	PodNotReady PodState = "notready" // stopped, its shim gone, or its rollback cut short
)

// Pod is the sandbox record, pods/<id>/pod.json.
type Pod struct {
	ID          string                       `json:"id"`
	State       PodState                     `json:"state"`
	CreatedAt   time.Time                    `json:"created_at"`
	Config      *runtimeapi.PodSandboxConfig `json:"config"`
	Handler     string                       `json:"runtime_handler,omitempty"`
	HostNetwork bool                         `json:"host_network,omitempty"`
	NetnsPath   string                       `json:"netns_path,omitempty"`
	// UsernsPath is where the pod's user namespace is pinned, when it has
	// one (hostUsers: false); its containers' rootfs are idmapped to it.
	UsernsPath string   `json:"userns_path,omitempty"`
	IPs        []string `json:"ips,omitempty"`
	Cgroup     string   `json:"cgroup"`     // the pod's cgroup (kubelet's parent, or ours)
	OwnCgroup  bool     `json:"own_cgroup"` // husk made it and removes it
	// Slice is the pod's systemd slice under the systemd cgroup driver
	// (Cgroup is then its path): its containers are scopes in it.
	Slice      string `json:"slice,omitempty"`
	ShimSocket string `json:"shim_socket"` // under the state dir
	ShimPid    int    `json:"shim_pid,omitempty"`
	InfraPid   int    `json:"infra_pid,omitempty"`
	// NetworkDone says CNI ADD ran and DEL still owes: teardown runs DEL
	// until it succeeds once.
	NetworkDone bool `json:"network_done,omitempty"`
	ShmMounted  bool `json:"shm_mounted,omitempty"`
	// Layers are the layer dirs of the infra's rootfs (see Container).
	Layers []string `json:"layers,omitempty"`

	// exit of the infra process, read from pods/<id>/exit.json
	infraExit *shim.ExitStatus
	// shimStopping is set before husk shuts the shim down itself, so its
	// exit is not taken for a death.
	shimStopping bool
	// shimDied is set when the shim was found dead (shimGone, recovery).
	shimDied bool
}

// ContainerState is where a container is, as its record stores it. The
// transitions, each through updateContainer:
//
//	creating --the shim's create--> created --StartContainer--> running
//	created, running --its exit (exit.json), or its shim's death--> exited
//	creating --a rollback that could not delete--> (dir swept by the pod's removal)
//	any --RemoveContainer, or its pod's removal--> (gone)
type ContainerState string

// The container states.
const (
	ContainerCreating ContainerState = "creating" // half-made: recovery removes it
	ContainerCreated  ContainerState = "created"
	ContainerRunning  ContainerState = "running"
	ContainerExited   ContainerState = "exited"
)

// Container is a container record, pods/<pod>/containers/<id>/container.json.
type Container struct {
	ID        string                      `json:"id"`
	PodID     string                      `json:"pod_id"`
	State     ContainerState              `json:"state"`
	CreatedAt time.Time                   `json:"created_at"`
	StartedAt time.Time                   `json:"started_at,omitzero"`
	Config    *runtimeapi.ContainerConfig `json:"config"`
	ImageRef  string                      `json:"image_ref"` // what the user asked for, as given
	ImageID   string                      `json:"image_id"`  // sha256:<config digest>
	RepoRef   string                      `json:"repo_ref"`  // repo digest, or the id
	ImageName string                      `json:"image_name"`
	LogPath   string                      `json:"log_path,omitempty"` // absolute, or empty
	Pid       int                         `json:"pid,omitempty"`
	Mounted   bool                        `json:"mounted,omitempty"` // rootfs overlay is up
	// Layers are the layer dirs the rootfs and image volumes use: the
	// image store keeps them while the record exists (Manager.UsedLayers).
	Layers []string `json:"layers,omitempty"`
	// VolumeImageIDs maps each image volume's container path to the id of
	// the image it mounts (its ImageSpec.image_ref in ContainerStatus).
	VolumeImageIDs map[string]string `json:"volume_image_ids,omitempty"`
	// User is who the process runs as, resolved at create (ContainerStatus
	// reports it; kubelet checks it against runAsNonRoot and the policy).
	User specs.User `json:"user"`
	// ShimDied: the container's shim died while it ran, so its exit
	// status is unknown (ContainerStatus reason ShimDied).
	ShimDied bool `json:"shim_died,omitempty"`

	// Exit is filled from exit.json, which the shim writes.
	Exit *shim.ExitStatus `json:"-"`
}
