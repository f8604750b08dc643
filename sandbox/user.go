package sandbox

import (
	"fmt"
	"strconv"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// resolveUser turns the security context and the image's USER into the
// numeric ids the process runs as, reading names from the container's own
// /etc/passwd and /etc/group (through securejoin: the image decides where
// those paths lead, and must not lead outside its rootfs).
func resolveUser(rootfs string, sec *runtimeapi.LinuxContainerSecurityContext, imageUser string) (specs.User, error) {
	// CRI: run_as_group applies only with run_as_user or run_as_username.
	if sec.GetRunAsGroup() != nil && sec.GetRunAsUser() == nil && sec.GetRunAsUsername() == "" {
		return specs.User{}, fmt.Errorf("run_as_group is set without run_as_user or run_as_username: %w", ErrInvalid)
	}
	spec := imageUser
	switch {
	case sec.GetRunAsUser() != nil:
		spec = strconv.FormatInt(sec.GetRunAsUser().GetValue(), 10)
	case sec.GetRunAsUsername() != "":
		spec = sec.GetRunAsUsername()
	}
	// A uid given without a group takes the image's group only when the
	// image named the same user; Kubernetes says the primary group then
	// comes from /etc/passwd, as GetExecUser does.
	if g := sec.GetRunAsGroup(); g != nil {
		u, _, _ := cutUser(spec)
		spec = u + ":" + strconv.FormatInt(g.GetValue(), 10)
	}
	passwd, err := securejoin.SecureJoin(rootfs, "/etc/passwd")
	if err != nil {
		return specs.User{}, fmt.Errorf("resolve /etc/passwd in %s: %w", rootfs, err)
	}
	group, err := securejoin.SecureJoin(rootfs, "/etc/group")
	if err != nil {
		return specs.User{}, fmt.Errorf("resolve /etc/group in %s: %w", rootfs, err)
	}
	eu, err := user.GetExecUserPath(spec, &user.ExecUser{}, passwd, group)
	if err != nil {
		return specs.User{}, fmt.Errorf("user %q: %v: %w", spec, err, ErrInvalid)
	}
	u := specs.User{UID: uint32(eu.Uid), GID: uint32(eu.Gid)}
	// The primary group is listed among the supplementary ones too, as
	// containerd does, so `id -G` and ContainerStatus agree. Merge (the
	// default) adds the groups the image's /etc/group gives the user;
	// Strict takes only what the pod asks for.
	seen := map[uint32]bool{}
	addGroup := func(g uint32) {
		if !seen[g] {
			seen[g] = true
			u.AdditionalGids = append(u.AdditionalGids, g)
		}
	}
	addGroup(u.GID)
	if sec.GetSupplementalGroupsPolicy() != runtimeapi.SupplementalGroupsPolicy_Strict {
		for _, g := range eu.Sgids {
			addGroup(uint32(g))
		}
	}
	for _, g := range sec.GetSupplementalGroups() {
		addGroup(uint32(g))
	}
	return u, nil
}

func cutUser(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
