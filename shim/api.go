// Package shim is the contract between the husk daemon and husk-shim, the
// per-pod supervisor, and both of its ends: the server that runs inside
// husk-shim and the client the daemon uses.
//
// The transport is one JSON request and one JSON response per connection on
// a unix socket. That keeps the shim, which lives as long as its pod and is
// paid for once per pod, free of gRPC and its memory. Shims outlive the
// daemon, so every request carries the API version: a daemon that meets a
// shim speaking another version is told so plainly and the pod must be
// drained.
package shim

import (
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Version is the shim API version. Bump it on any incompatible change.
const Version = 1

// Request is every call's envelope; Method picks which fields matter.
type Request struct {
	Version int    `json:"version"`
	Method  string `json:"method"`
	ID      string `json:"id,omitempty"`

	// create
	Bundle   string `json:"bundle,omitempty"`    // holds config.json (the OCI spec)
	LogPath  string `json:"log_path,omitempty"`  // CRI log file; empty discards output
	ExitFile string `json:"exit_file,omitempty"` // where the exit status is written before it is reported
	Start    bool   `json:"start,omitempty"`     // start right away (create + start in one step)

	// kill
	Signal int `json:"signal,omitempty"`

	// wait, exec
	Timeout time.Duration `json:"timeout,omitempty"` // 0: no timeout

	// exec
	Process *specs.Process `json:"process,omitempty"`

	// create (stdin), exec_stream, attach: see stream_api.go
	StreamRequest

	// update
	Resources *specs.LinuxResources `json:"resources,omitempty"`
}

// Method names.
const (
	MethodVersion  = "version"
	MethodCreate   = "create"
	MethodStart    = "start"
	MethodKill     = "kill"
	MethodWait     = "wait"
	MethodExec     = "exec"
	MethodDelete   = "delete"
	MethodState    = "state"
	MethodShutdown = "shutdown"
	MethodReopen   = "reopen_log"
	MethodUpdate   = "update"
)

// Error codes, so the daemon can map them to gRPC codes.
const (
	CodeNotFound      = "not_found"
	CodeAlreadyExists = "already_exists"
	CodeBadRequest    = "bad_request"
	CodeVersion       = "version_mismatch"
	CodeInternal      = "internal"
)

// Response is every call's answer.
type Response struct {
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"`

	Version    int         `json:"version,omitempty"`
	Pid        int         `json:"pid,omitempty"`
	Exited     bool        `json:"exited,omitempty"`
	Exit       *ExitStatus `json:"exit,omitempty"`
	Containers []Container `json:"containers,omitempty"`
	ExecResult *ExecResult `json:"exec_result,omitempty"`

	// exec_stream, attach: see stream_api.go
	StreamResponse
}

// ExitStatus is how a container's init ended. It is written to the
// container's exit file before any caller hears of it.
type ExitStatus struct {
	Code       int       `json:"code"`
	Signal     int       `json:"signal,omitempty"`
	OOMKilled  bool      `json:"oom_killed,omitempty"`
	FinishedAt time.Time `json:"finished_at"`
}

// Container is a container as the shim sees it.
type Container struct {
	ID     string      `json:"id"`
	Pid    int         `json:"pid"`
	Status string      `json:"status"` // created, running, exited
	Exit   *ExitStatus `json:"exit,omitempty"`
}

// Container states.
const (
	StatusCreated = "created"
	StatusRunning = "running"
	StatusExited  = "exited"
)

// ExecResult is the outcome of a synchronous exec.
type ExecResult struct {
	Stdout   []byte `json:"stdout,omitempty"`
	Stderr   []byte `json:"stderr,omitempty"`
	ExitCode int    `json:"exit_code"`
	TimedOut bool   `json:"timed_out,omitempty"`
}
