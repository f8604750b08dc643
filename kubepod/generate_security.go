package kubepod

// Generate's reverse of security.go: the pod's security context and
// what each container states beside it.

import (
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// security reverses containerSecurityContext against the pod's security
// context (podSecurity): a container states what differs from the pod's.
func (g *generator) security(ctr string, sc *runtimeapi.LinuxContainerSecurityContext) *corev1.SecurityContext {
	if sc == nil {
		g.note("container %s: its config has no security context; none is reproduced", ctr)
		return nil
	}
	out := &corev1.SecurityContext{}
	if caps := sc.Capabilities; caps != nil {
		// Set even when empty: `capabilities: {}` translates to an empty
		// Capability, not none.
		out.Capabilities = &corev1.Capabilities{}
		for _, a := range caps.AddCapabilities {
			out.Capabilities.Add = append(out.Capabilities.Add, corev1.Capability(a))
		}
		for _, d := range caps.DropCapabilities {
			out.Capabilities.Drop = append(out.Capabilities.Drop, corev1.Capability(d))
		}
		if len(caps.AddAmbientCapabilities) > 0 {
			g.note("container %s: ambient capabilities %v are not reproduced", ctr, caps.AddAmbientCapabilities)
		}
	}
	if sc.Privileged {
		out.Privileged = new(true)
	}
	psc := g.psc
	out.RunAsUser = g.containerID(ctr, "runAsUser", sc.RunAsUser, psc.RunAsUser)
	out.RunAsGroup = g.containerID(ctr, "runAsGroup", sc.RunAsGroup, psc.RunAsGroup)
	if sc.RunAsUsername != "" {
		g.note("container %s: user name %s is not reproduced (a Pod names users by uid)", ctr, sc.RunAsUsername)
	}
	if se := fromSELinux(sc.SelinuxOptions); !reflect.DeepEqual(se, psc.SELinuxOptions) {
		if se == nil {
			g.note("container %s: it has no SELinux options while the pod has; it gets the pod's", ctr)
		}
		out.SELinuxOptions = se
	}
	if sc.ReadonlyRootfs {
		out.ReadOnlyRootFilesystem = new(true)
	}
	if sc.NoNewPrivs {
		out.AllowPrivilegeEscalation = new(false)
	}
	// The default masked and read-only paths are the runtime's to fill;
	// none at all is an Unmasked /proc.
	if len(sc.MaskedPaths) == 0 && len(sc.ReadonlyPaths) == 0 {
		out.ProcMount = new(corev1.UnmaskedProcMount)
	}
	sbsc := g.sb.GetLinux().GetSecurityContext()
	if !proto.Equal(sc.NamespaceOptions, sbsc.GetNamespaceOptions()) {
		g.note("container %s: its namespace options differ from the sandbox's; it gets the pod's", ctr)
	}
	if !slices.Equal(sc.SupplementalGroups, sbsc.GetSupplementalGroups()) || sc.SupplementalGroupsPolicy != sbsc.GetSupplementalGroupsPolicy() {
		g.note("container %s: its supplemental groups %v differ from the sandbox's; it gets the pod's", ctr, sc.SupplementalGroups)
	}
	out.SeccompProfile = g.seccomp(ctr, sc.Seccomp)
	out.AppArmorProfile = apparmor(sc.Apparmor)
	//nolint:staticcheck // the deprecated fields are what older clients still send; noticed, not used
	if (sc.SeccompProfilePath != "" && sc.Seccomp == nil) || (sc.ApparmorProfile != "" && sc.Apparmor == nil) {
		g.note("container %s: its seccomp or AppArmor profile is named only by a deprecated field; not reproduced", ctr)
	}
	return out
}

// containerID is a container's runAsUser or runAsGroup: set when it is
// not the pod's.
func (g *generator) containerID(ctr, field string, v *runtimeapi.Int64Value, pod *int64) *int64 {
	switch {
	case v != nil && (pod == nil || *pod != v.Value):
		return new(v.Value)
	case v == nil && pod != nil:
		g.note("container %s: it has no %s while the pod has %d; it gets the pod's", ctr, field, *pod)
	}
	return nil
}

func (g *generator) seccomp(ctr string, p *runtimeapi.SecurityProfile) *corev1.SeccompProfile {
	if p == nil {
		return nil
	}
	switch p.ProfileType {
	case runtimeapi.SecurityProfile_RuntimeDefault:
		return &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	case runtimeapi.SecurityProfile_Unconfined:
		return &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
	}
	// Localhost: named relative to the seccomp root, as Translate joins it.
	root := filepath.Clean(g.opts.SeccompRoot)
	rel, err := filepath.Rel(root, filepath.Clean(p.LocalhostRef))
	if g.opts.SeccompRoot == "" || err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		g.note("container %s: seccomp profile %s is not under the seccomp root %s, so no Localhost profile names it; the manifest names it by its path, which Translate puts under the root", ctr, p.LocalhostRef, g.opts.SeccompRoot)
		rel = p.LocalhostRef
	}
	return &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: new(rel)}
}

func apparmor(p *runtimeapi.SecurityProfile) *corev1.AppArmorProfile {
	if p == nil {
		return nil
	}
	switch p.ProfileType {
	case runtimeapi.SecurityProfile_RuntimeDefault:
		return &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeRuntimeDefault}
	case runtimeapi.SecurityProfile_Unconfined:
		return &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined}
	}
	return &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeLocalhost, LocalhostProfile: new(p.LocalhostRef)}
}

// factorProfiles moves a seccomp or AppArmor profile that every
// container has to the pod's security context: the manifest says it once.
func (g *generator) factorProfiles(ctrs []*corev1.Container) {
	var seccomps []*corev1.SeccompProfile
	var apparmors []*corev1.AppArmorProfile
	for _, c := range ctrs {
		if c.SecurityContext == nil {
			return // no security context in its config: nothing to share
		}
		seccomps = append(seccomps, c.SecurityContext.SeccompProfile)
		apparmors = append(apparmors, c.SecurityContext.AppArmorProfile)
	}
	if len(seccomps) > 0 && seccomps[0] != nil && allEqual(seccomps) {
		g.psc.SeccompProfile = seccomps[0]
		for _, c := range ctrs {
			c.SecurityContext.SeccompProfile = nil
		}
	}
	if len(apparmors) > 0 && apparmors[0] != nil && allEqual(apparmors) {
		g.psc.AppArmorProfile = apparmors[0]
		for _, c := range ctrs {
			c.SecurityContext.AppArmorProfile = nil
		}
	}
}

func allEqual[T any](list []T) bool {
	for _, v := range list[1:] {
		if !reflect.DeepEqual(v, list[0]) {
			return false
		}
	}
	return true
}

// privileged checks the sandbox's privileged flag, which Translate sets
// when a container is privileged.
func (g *generator) privileged(ctrs []*corev1.Container) {
	some := false
	for _, c := range ctrs {
		if sc := c.SecurityContext; sc != nil && sc.Privileged != nil && *sc.Privileged {
			some = true
		}
	}
	if g.sb.GetLinux().GetSecurityContext().GetPrivileged() != some {
		g.note("the sandbox is privileged while no container is, or the other way round; the sandbox follows its containers")
	}
}
