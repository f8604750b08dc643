package kubepod

import (
	"fmt"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The paths kubelet masks and makes read-only in /proc and /sys unless a
// container asks for an unmasked /proc (securitycontext.defaultMaskedPaths,
// without the per-CPU thermal_throttle entries that depend on the node).
var (
	defaultMaskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
	defaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// effectiveSecurityContext merges the pod's security context under the
// container's, as securitycontext.DetermineEffectiveSecurityContext does.
func effectiveSecurityContext(pod *corev1.Pod, c *corev1.Container) *corev1.SecurityContext {
	eff := &corev1.SecurityContext{}
	if psc := pod.Spec.SecurityContext; psc != nil {
		eff.SELinuxOptions = psc.SELinuxOptions
		eff.RunAsUser = psc.RunAsUser
		eff.RunAsGroup = psc.RunAsGroup
		eff.RunAsNonRoot = psc.RunAsNonRoot
		eff.SeccompProfile = psc.SeccompProfile
		eff.AppArmorProfile = psc.AppArmorProfile
	}
	csc := c.SecurityContext
	if csc == nil {
		return eff
	}
	if csc.SELinuxOptions != nil {
		eff.SELinuxOptions = csc.SELinuxOptions
	}
	if csc.RunAsUser != nil {
		eff.RunAsUser = csc.RunAsUser
	}
	if csc.RunAsGroup != nil {
		eff.RunAsGroup = csc.RunAsGroup
	}
	if csc.RunAsNonRoot != nil {
		eff.RunAsNonRoot = csc.RunAsNonRoot
	}
	if csc.SeccompProfile != nil {
		eff.SeccompProfile = csc.SeccompProfile
	}
	if csc.AppArmorProfile != nil {
		eff.AppArmorProfile = csc.AppArmorProfile
	}
	eff.Capabilities = csc.Capabilities
	eff.Privileged = csc.Privileged
	eff.ReadOnlyRootFilesystem = csc.ReadOnlyRootFilesystem
	eff.AllowPrivilegeEscalation = csc.AllowPrivilegeEscalation
	eff.ProcMount = csc.ProcMount
	return eff
}

// namespaceOptions is runtimeutil.NamespacesForPod without user namespaces.
func namespaceOptions(pod *corev1.Pod) *runtimeapi.NamespaceOption {
	ns := &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_POD,
		Pid:     runtimeapi.NamespaceMode_CONTAINER,
		Ipc:     runtimeapi.NamespaceMode_POD,
	}
	if pod.Spec.HostNetwork {
		ns.Network = runtimeapi.NamespaceMode_NODE
	}
	if pod.Spec.HostIPC {
		ns.Ipc = runtimeapi.NamespaceMode_NODE
	}
	switch {
	case pod.Spec.HostPID:
		ns.Pid = runtimeapi.NamespaceMode_NODE
	case pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace:
		ns.Pid = runtimeapi.NamespaceMode_POD
	}
	return ns
}

func supplementalGroups(pod *corev1.Pod) ([]int64, runtimeapi.SupplementalGroupsPolicy, error) {
	psc := pod.Spec.SecurityContext
	if psc == nil {
		return nil, 0, nil
	}
	var groups []int64
	if psc.FSGroup != nil {
		groups = append(groups, *psc.FSGroup)
	}
	groups = append(groups, psc.SupplementalGroups...)
	var policy runtimeapi.SupplementalGroupsPolicy
	if psc.SupplementalGroupsPolicy != nil {
		v, ok := runtimeapi.SupplementalGroupsPolicy_value[string(*psc.SupplementalGroupsPolicy)]
		if !ok {
			return nil, 0, fmt.Errorf("spec.securityContext.supplementalGroupsPolicy: unsupported value %q", *psc.SupplementalGroupsPolicy)
		}
		policy = runtimeapi.SupplementalGroupsPolicy(v)
	}
	return groups, policy, nil
}

func selinux(o *corev1.SELinuxOptions) *runtimeapi.SELinuxOption {
	if o == nil {
		return nil
	}
	return &runtimeapi.SELinuxOption{User: o.User, Role: o.Role, Type: o.Type, Level: o.Level}
}

// seccompProfile is kubelet's getSeccompProfile; containers that set none
// get defaultProfile (kubelet: Unconfined, or RuntimeDefault with
// seccompDefault: true).
func seccompProfile(p *corev1.SeccompProfile, root string, runtimeDefault bool, field string) (*runtimeapi.SecurityProfile, error) {
	if p == nil {
		if runtimeDefault {
			return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, nil
		}
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, nil
	}
	switch p.Type {
	case corev1.SeccompProfileTypeRuntimeDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, nil
	case corev1.SeccompProfileTypeUnconfined:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, nil
	case corev1.SeccompProfileTypeLocalhost:
		if p.LocalhostProfile == nil || *p.LocalhostProfile == "" {
			return nil, fmt.Errorf("%s.localhostProfile: required with type Localhost", field)
		}
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost,
			LocalhostRef: filepath.Join(root, filepath.Clean("/"+*p.LocalhostProfile))}, nil
	}
	return nil, fmt.Errorf("%s.type: unknown seccomp profile type %q", field, p.Type)
}

func apparmorProfile(p *corev1.AppArmorProfile, field string) (*runtimeapi.SecurityProfile, error) {
	if p == nil {
		return nil, nil
	}
	switch p.Type {
	case corev1.AppArmorProfileTypeRuntimeDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, nil
	case corev1.AppArmorProfileTypeUnconfined:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, nil
	case corev1.AppArmorProfileTypeLocalhost:
		if p.LocalhostProfile == nil || *p.LocalhostProfile == "" {
			return nil, fmt.Errorf("%s.localhostProfile: required with type Localhost", field)
		}
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: *p.LocalhostProfile}, nil
	}
	return nil, fmt.Errorf("%s.type: unknown AppArmor profile type %q", field, p.Type)
}

// containerSecurityContext is kubelet's determineEffectiveSecurityContext.
func (t *translator) containerSecurityContext(c *corev1.Container, field string) (*runtimeapi.LinuxContainerSecurityContext, error) {
	pod, opts := t.pod, t.opts
	eff := effectiveSecurityContext(pod, c)
	sc := &runtimeapi.LinuxContainerSecurityContext{
		SelinuxOptions:   selinux(eff.SELinuxOptions),
		NamespaceOptions: namespaceOptions(pod),
		MaskedPaths:      defaultMaskedPaths,
		ReadonlyPaths:    defaultReadonlyPaths,
	}
	if eff.ProcMount != nil && *eff.ProcMount == corev1.UnmaskedProcMount {
		sc.MaskedPaths, sc.ReadonlyPaths = []string{}, []string{}
	}
	if caps := eff.Capabilities; caps != nil {
		sc.Capabilities = &runtimeapi.Capability{}
		for _, a := range caps.Add {
			sc.Capabilities.AddCapabilities = append(sc.Capabilities.AddCapabilities, string(a))
		}
		for _, d := range caps.Drop {
			sc.Capabilities.DropCapabilities = append(sc.Capabilities.DropCapabilities, string(d))
		}
	}
	if eff.RunAsUser != nil {
		sc.RunAsUser = &runtimeapi.Int64Value{Value: *eff.RunAsUser}
	}
	if eff.RunAsGroup != nil {
		sc.RunAsGroup = &runtimeapi.Int64Value{Value: *eff.RunAsGroup}
	}
	if eff.Privileged != nil {
		sc.Privileged = *eff.Privileged
	}
	if eff.ReadOnlyRootFilesystem != nil {
		sc.ReadonlyRootfs = *eff.ReadOnlyRootFilesystem
	}
	if eff.AllowPrivilegeEscalation != nil {
		sc.NoNewPrivs = !*eff.AllowPrivilegeEscalation
	}
	var err error
	groups, policy, err := supplementalGroups(pod)
	if err != nil {
		return nil, err
	}
	sc.SupplementalGroups, sc.SupplementalGroupsPolicy = groups, policy
	if sc.Seccomp, err = seccompProfile(eff.SeccompProfile, opts.SeccompRoot, opts.SeccompRuntimeDefault, field+".securityContext.seccompProfile"); err != nil {
		return nil, err
	}
	if sc.Apparmor, err = apparmorProfile(eff.AppArmorProfile, field+".securityContext.appArmorProfile"); err != nil {
		return nil, err
	}
	return sc, nil
}

// sandboxSecurityContext is what generatePodSandboxLinuxConfig puts in
// the sandbox config: the infra container always runs RuntimeDefault.
func sandboxSecurityContext(pod *corev1.Pod) (*runtimeapi.LinuxSandboxSecurityContext, error) {
	sc := &runtimeapi.LinuxSandboxSecurityContext{
		NamespaceOptions: namespaceOptions(pod),
		Seccomp:          &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
	}
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
				sc.Privileged = true
			}
		}
	}
	if psc := pod.Spec.SecurityContext; psc != nil {
		if psc.RunAsUser != nil {
			sc.RunAsUser = &runtimeapi.Int64Value{Value: *psc.RunAsUser}
		}
		if psc.RunAsGroup != nil {
			sc.RunAsGroup = &runtimeapi.Int64Value{Value: *psc.RunAsGroup}
		}
		sc.SelinuxOptions = selinux(psc.SELinuxOptions)
	}
	groups, policy, err := supplementalGroups(pod)
	if err != nil {
		return nil, err
	}
	sc.SupplementalGroups, sc.SupplementalGroupsPolicy = groups, policy
	return sc, nil
}
