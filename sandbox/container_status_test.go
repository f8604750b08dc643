package sandbox

import (
	"testing"

	"github.com/husk-runtime/husk/shim"
)

// The reason ContainerStatus gives an exited container; a shim's death is
// the record's to say (ShimDied), or, in records written before it could,
// exit.json's signal -1.
func TestExitReason(t *testing.T) {
	m := &Manager{}
	for _, tc := range []struct {
		c    Container
		want string
	}{
		{Container{ShimDied: true, Exit: &shim.ExitStatus{Code: 255}}, ReasonShimDied},
		{Container{Exit: &shim.ExitStatus{Code: 255, Signal: -1}}, ReasonShimDied},
		{Container{Exit: &shim.ExitStatus{Code: 137, OOMKilled: true}}, ReasonOOMKilled},
		{Container{Exit: &shim.ExitStatus{Code: 0}}, ReasonCompleted},
		{Container{Exit: &shim.ExitStatus{Code: 255}}, ReasonError},
	} {
		tc.c.State = ContainerExited
		if got := m.viewContainer(&tc.c).Reason; got != tc.want {
			t.Errorf("%+v: reason %q, want %q", tc.c.Exit, got, tc.want)
		}
	}
}
