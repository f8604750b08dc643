package cri

import (
	"bytes"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/husk-runtime/husk/network"
	"github.com/husk-runtime/husk/sandbox"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/cpuset"
)

// Validation at the gate: every field of a request that the kernel, CNI,
// libcontainer or the file system would refuse deep inside an operation
// (leaving kubelet an Unknown with a message from below) is checked here,
// before any work starts, and answered InvalidArgument naming the field
// and the rule. The rules are the kernel's and Kubernetes' own limits; where
// husk needs less than Kubernetes allows (a name only ever labels a
// record), the limit is the looser one critest and kubelet both stay in.

// invalidField is a request field that breaks a rule.
type invalidField struct {
	field string // as the CRI's proto names it, e.g. config.linux.sysctls["kernel.sem"]
	rule  string
}

func (e *invalidField) Error() string { return e.field + ": " + e.rule }

// Unwrap classes it for codeOf: InvalidArgument.
func (e *invalidField) Unwrap() error { return sandbox.ErrInvalid }

// bad makes the error; a rule quoting a huge value is cut, so the answer
// to a 1 MB field is not a 1 MB message (a field name holding a map key is
// cut the same way).
func bad(field, format string, args ...any) error {
	return &invalidField{field: cut(field), rule: cut(fmt.Sprintf(format, args...))}
}

func cut(s string) string {
	const max = 256
	if len(s) <= max {
		return s
	}
	return s[:max] + fmt.Sprintf("... (%d bytes)", len(s))
}

const (
	pathMax = 4096 // PATH_MAX, with its NUL
	nameMax = 255  // NAME_MAX: one path component

	// Kubernetes' limits (k8s.io/apimachinery validation): a pod name is a
	// DNS subdomain, a namespace a DNS label. Container names are DNS labels
	// for kubelet but longer in critest (85 bytes), so they get the
	// subdomain's limit; uids are kubelet's 36-byte UUIDs or a static pod's
	// hash.
	maxPodName       = 253
	maxNamespace     = 63
	maxUID           = 253
	maxContainerName = 253
	// A label key is a qualified name: a DNS-subdomain prefix, '/', a name
	// of 63. Values: kubelet labels CRI objects with pod names (253).
	maxLabelKey   = 253 + 1 + 63
	maxLabelValue = 253
	// Kubernetes' TotalAnnotationSizeLimitB.
	maxAnnotations = 256 << 10
	// Kubernetes' MaxDNSSearchPaths and a search domain's length.
	maxDNSSearch     = 32
	maxDNSSearchName = 253

	// CRI-O's floor for a memory limit (minMemoryLimit): below it the
	// container's own init cannot start, and the failure comes from deep
	// inside the runtime.
	minMemoryLimit = 12 << 20
	// The kernel's range for cpu.shares as kubelet uses it (MinShares,
	// MaxShares) and for the CFS period (cpu.cfs_period_us: 1 ms to 1 s).
	minShares, maxShares = 2, 262144
	minCFSPeriod         = 1000
	maxCFSPeriod         = 1000000
	minCFSQuota          = 1000
	// The largest id a user namespace can map (2^32-2; -1 is "no id").
	maxID = math.MaxUint32 - 1
)

// checkPath is the rule for any path a request names: not empty where
// required, absolute where abs, no NUL, within PATH_MAX and NAME_MAX.
func checkPath(field, p string, required, abs bool) error {
	if p == "" {
		if required {
			return bad(field, "is required")
		}
		return nil
	}
	if strings.IndexByte(p, 0) >= 0 {
		return bad(field, "holds a NUL byte")
	}
	if len(p) >= pathMax {
		return bad(field, "is %d bytes long, more than PATH_MAX (%d)", len(p), pathMax-1)
	}
	for _, c := range strings.Split(p, "/") {
		if len(c) > nameMax {
			return bad(field, "has a component of %d bytes, more than NAME_MAX (%d)", len(c), nameMax)
		}
	}
	if abs && !filepath.IsAbs(p) {
		return bad(field, "%q is not an absolute path", p)
	}
	return nil
}

func checkLen(field, s string, max int, required bool) error {
	switch {
	case s == "" && required:
		return bad(field, "is required")
	case len(s) > max:
		return bad(field, "is %d bytes long, more than %d", len(s), max)
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return bad(field, "holds a control character")
	}
	return nil
}

func checkLabels(field string, m map[string]string, maxValue, maxTotal int) error {
	total := 0
	for k, v := range m {
		if err := checkLen(fmt.Sprintf("%s[%q]", field, k), k, maxLabelKey, true); err != nil {
			return err
		}
		if len(v) > maxValue {
			return bad(fmt.Sprintf("%s[%q]", field, k), "value is %d bytes long, more than %d", len(v), maxValue)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return bad(fmt.Sprintf("%s[%q]", field, k), "value holds a NUL byte")
		}
		total += len(k) + len(v)
	}
	if total > maxTotal {
		return bad(field, "total %d bytes, more than %d", total, maxTotal)
	}
	return nil
}

// validatePodSandboxConfig checks a RunPodSandbox config (also the
// sandbox config kubelet sends with CreateContainer).
func validatePodSandboxConfig(cfg *runtimeapi.PodSandboxConfig) error {
	md := cfg.GetMetadata()
	if md == nil {
		return bad("config.metadata", "is required")
	}
	if err := checkLen("config.metadata.name", md.GetName(), maxPodName, true); err != nil {
		return err
	}
	if err := checkLen("config.metadata.namespace", md.GetNamespace(), maxNamespace, true); err != nil {
		return err
	}
	if err := checkLen("config.metadata.uid", md.GetUid(), maxUID, true); err != nil {
		return err
	}
	if strings.Contains(md.GetUid(), "/") {
		return bad("config.metadata.uid", "holds a '/'")
	}
	if h := cfg.GetHostname(); h != "" {
		if err := network.ValidateHostname(h); err != nil {
			return bad("config.hostname", "%v", err)
		}
	}
	if err := checkPath("config.log_directory", cfg.GetLogDirectory(), false, true); err != nil {
		return err
	}
	if err := validateDNS(cfg.GetDnsConfig()); err != nil {
		return err
	}
	for i, pm := range cfg.GetPortMappings() {
		if err := validatePortMapping(fmt.Sprintf("config.port_mappings[%d]", i), pm); err != nil {
			return err
		}
	}
	if err := checkLabels("config.labels", cfg.GetLabels(), maxLabelValue, math.MaxInt); err != nil {
		return err
	}
	if err := checkLabels("config.annotations", cfg.GetAnnotations(), maxAnnotations, maxAnnotations); err != nil {
		return err
	}
	lx := cfg.GetLinux()
	if cp := lx.GetCgroupParent(); cp != "" {
		if err := checkPath("config.linux.cgroup_parent", cp, false, false); err != nil {
			return err
		}
		if hasDotDot(cp) {
			return bad("config.linux.cgroup_parent", "%q has a '..' component", cp)
		}
	}
	ns := lx.GetSecurityContext().GetNamespaceOptions()
	for k := range lx.GetSysctls() {
		if err := validateSysctl(k, ns); err != nil {
			return err
		}
	}
	if err := validateIDs("config.linux.security_context", lx.GetSecurityContext().GetRunAsUser(), lx.GetSecurityContext().GetRunAsGroup(),
		lx.GetSecurityContext().GetSupplementalGroups()); err != nil {
		return err
	}
	if err := validateResources("config.linux.overhead", lx.GetOverhead()); err != nil {
		return err
	}
	return validateResources("config.linux.resources", lx.GetResources())
}

func hasDotDot(p string) bool {
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return true
		}
	}
	return false
}

// validateDNS: what husk writes into the pod's resolv.conf, one line per
// field, so nothing may hold white space (a newline would add a line).
func validateDNS(d *runtimeapi.DNSConfig) error {
	for i, s := range d.GetServers() {
		if _, err := netip.ParseAddr(s); err != nil {
			return bad(fmt.Sprintf("config.dns_config.servers[%d]", i), "%q is not an IP address", s)
		}
	}
	if n := len(d.GetSearches()); n > maxDNSSearch {
		return bad("config.dns_config.searches", "has %d entries, more than %d", n, maxDNSSearch)
	}
	for i, s := range d.GetSearches() {
		f := fmt.Sprintf("config.dns_config.searches[%d]", i)
		if err := checkLen(f, s, maxDNSSearchName, true); err != nil {
			return err
		}
		if strings.ContainsAny(s, " \t") {
			return bad(f, "%q holds white space", s)
		}
	}
	for i, o := range d.GetOptions() {
		f := fmt.Sprintf("config.dns_config.options[%d]", i)
		if err := checkLen(f, o, 255, true); err != nil {
			return err
		}
		if strings.ContainsAny(o, " \t") {
			return bad(f, "%q holds white space", o)
		}
	}
	return nil
}

func validatePortMapping(field string, pm *runtimeapi.PortMapping) error {
	if p := pm.GetContainerPort(); p < 1 || p > 65535 {
		return bad(field+".container_port", "%d is not a port (1-65535)", p)
	}
	if p := pm.GetHostPort(); p < 0 || p > 65535 {
		return bad(field+".host_port", "%d is not a port (0-65535, 0 for none)", p)
	}
	if _, ok := runtimeapi.Protocol_name[int32(pm.GetProtocol())]; !ok {
		return bad(field+".protocol", "%d is not TCP, UDP or SCTP", pm.GetProtocol())
	}
	if ip := pm.GetHostIp(); ip != "" {
		if _, err := netip.ParseAddr(ip); err != nil {
			return bad(field+".host_ip", "%q is not an IP address", ip)
		}
	}
	return nil
}

// Kubernetes' sysctl name (k8s.io/component-helpers/node/util/sysctl):
// segments of [a-z0-9], '-' and '_' inside, joined by '.' or '/'.
var sysctlName = regexp.MustCompile(`^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$`)

// validateSysctl refuses a sysctl the container cannot be given: a name
// that is not one, one outside kubelet's namespaced list
// (pkg/kubelet/sysctl: kernel.sem, kernel.shm*, kernel.msg*, fs.mqueue.*,
// net.*), one whose namespace the pod shares with the host, and one the
// kernel does not have. Names may use '/' as the separator, as Kubernetes
// allows ("kernel/shm_rmid_forced"; a '.' in a segment is then literal,
// e.g. an interface name).
func validateSysctl(key string, ns *runtimeapi.NamespaceOption) error {
	field := fmt.Sprintf("config.linux.sysctls[%q]", key)
	if len(key) > 253 || !sysctlName.MatchString(key) {
		return bad(field, "is not a sysctl name")
	}
	dotted, path := key, strings.ReplaceAll(key, ".", "/")
	if i := strings.IndexAny(key, "./"); i >= 0 && key[i] == '/' {
		// The slash form: swap, as Kubernetes converts it.
		dotted = strings.Map(func(r rune) rune {
			switch r {
			case '/':
				return '.'
			case '.':
				return '/'
			}
			return r
		}, key)
		path = key
	}
	ipc := dotted == "kernel.sem" || strings.HasPrefix(dotted, "kernel.shm") || strings.HasPrefix(dotted, "kernel.msg") ||
		strings.HasPrefix(dotted, "fs.mqueue.")
	net := strings.HasPrefix(dotted, "net.")
	switch {
	case !ipc && !net:
		return bad(field, "is not a namespaced sysctl (kernel.sem, kernel.shm*, kernel.msg*, fs.mqueue.*, net.*)")
	case ipc && ns.GetIpc() == runtimeapi.NamespaceMode_NODE:
		return bad(field, "is an IPC sysctl, and the pod shares the host's IPC namespace")
	case net && ns.GetNetwork() == runtimeapi.NamespaceMode_NODE:
		return bad(field, "is a network sysctl, and the pod shares the host's network namespace")
	}
	// An interface's keys exist only once the pod's interfaces do.
	for _, p := range []string{"net/ipv4/conf/", "net/ipv6/conf/", "net/ipv4/neigh/", "net/ipv6/neigh/"} {
		if strings.HasPrefix(path, p) {
			return nil
		}
	}
	if _, err := os.Stat(filepath.Join("/proc/sys", path)); err != nil {
		return bad(field, "this kernel has no such sysctl (/proc/sys/%s)", path)
	}
	return nil
}

func validateIDs(field string, user, group *runtimeapi.Int64Value, groups []int64) error {
	if user != nil && (user.GetValue() < 0 || user.GetValue() > maxID) {
		return bad(field+".run_as_user", "%d is not a user id (0-%d)", user.GetValue(), int64(maxID))
	}
	if group != nil && (group.GetValue() < 0 || group.GetValue() > maxID) {
		return bad(field+".run_as_group", "%d is not a group id (0-%d)", group.GetValue(), int64(maxID))
	}
	for i, g := range groups {
		if g < 0 || g > maxID {
			return bad(fmt.Sprintf("%s.supplemental_groups[%d]", field, i), "%d is not a group id (0-%d)", g, int64(maxID))
		}
	}
	return nil
}

var (
	hugePageSize = regexp.MustCompile(`^[1-9][0-9]*[KMG]B$`)
	unifiedKey   = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$`)
	cpusetNumber = regexp.MustCompile(`[0-9]+`)
)

// validateResources checks the ranges the kernel takes for each limit; 0
// is "not set" throughout, as in the CRI.
func validateResources(field string, r *runtimeapi.LinuxContainerResources) error {
	if r == nil {
		return nil
	}
	if p := r.GetCpuPeriod(); p != 0 && (p < minCFSPeriod || p > maxCFSPeriod) {
		return bad(field+".cpu_period", "%d µs is outside the kernel's range (%d-%d)", p, minCFSPeriod, maxCFSPeriod)
	}
	if q := r.GetCpuQuota(); q != 0 && q != -1 && q < minCFSQuota {
		return bad(field+".cpu_quota", "%d µs is below the kernel's minimum (%d; -1 or 0 for none)", q, minCFSQuota)
	}
	if s := r.GetCpuShares(); s != 0 && (s < minShares || s > maxShares) {
		return bad(field+".cpu_shares", "%d is outside the kernel's range (%d-%d)", s, minShares, maxShares)
	}
	mem := r.GetMemoryLimitInBytes()
	if mem != 0 && mem < minMemoryLimit {
		return bad(field+".memory_limit_in_bytes", "%d is below the minimum of %d bytes (0 for none)", mem, minMemoryLimit)
	}
	if s := r.GetMemorySwapLimitInBytes(); s != 0 && s != -1 && (s < 0 || (mem > 0 && s < mem)) {
		return bad(field+".memory_swap_limit_in_bytes", "%d is below the memory limit %d (it counts memory and swap; -1 for unlimited)", s, mem)
	}
	if o := r.GetOomScoreAdj(); o < -1000 || o > 1000 {
		return bad(field+".oom_score_adj", "%d is outside -1000..1000", o)
	}
	if err := checkCpuset(field+".cpuset_cpus", r.GetCpusetCpus(), "/sys/devices/system/cpu/online"); err != nil {
		return err
	}
	if err := checkCpuset(field+".cpuset_mems", r.GetCpusetMems(), "/sys/devices/system/node/online"); err != nil {
		return err
	}
	for i, h := range r.GetHugepageLimits() {
		if !hugePageSize.MatchString(h.GetPageSize()) {
			return bad(fmt.Sprintf("%s.hugepage_limits[%d].page_size", field, i), "%q is not a page size such as 2MB or 1GB", h.GetPageSize())
		}
	}
	for k, v := range r.GetUnified() {
		f := fmt.Sprintf("%s.unified[%q]", field, k)
		if !unifiedKey.MatchString(k) {
			return bad(f, "is not a cgroup v2 file name such as memory.high")
		}
		if v == "" || strings.ContainsAny(v, "\n\x00") {
			return bad(f, "value %q is empty or holds a newline or NUL", v)
		}
	}
	return nil
}

// checkCpuset: the kernel's list syntax ("0-3,7"), and only CPUs or memory
// nodes the host has online (the kernel refuses others). A host without
// the online file (no NUMA) has node 0 only.
func checkCpuset(field, s, onlineFile string) error {
	if s == "" {
		return nil
	}
	// Bounded before cpuset.Parse, which makes a set element by element:
	// the kernel's NR_CPUS and MAX_NUMNODES are at most 8192.
	for _, n := range cpusetNumber.FindAllString(s, -1) {
		if len(n) > 4 || n > "8191" && len(n) == 4 {
			return bad(field, "%q names %s, beyond any kernel's 8192 CPUs or nodes", s, n)
		}
	}
	set, err := cpuset.Parse(s)
	if err != nil {
		return bad(field, "%q is not a list such as 0-3,7: %v", s, err)
	}
	online := cpuset.New(0)
	if b, err := os.ReadFile(onlineFile); err == nil {
		if o, err := cpuset.Parse(strings.TrimSpace(string(b))); err == nil {
			online = o
		}
	}
	if !set.IsSubsetOf(online) {
		return bad(field, "%q names %s, which this host does not have online (%s)", s, set.Difference(online), online)
	}
	return nil
}

// validateContainerConfig checks a CreateContainer config; pod is the
// sandbox's config (for the log directory).
func validateContainerConfig(cfg *runtimeapi.ContainerConfig, pod *runtimeapi.PodSandboxConfig) error {
	md := cfg.GetMetadata()
	if md == nil {
		return bad("config.metadata", "is required")
	}
	if err := checkLen("config.metadata.name", md.GetName(), maxContainerName, true); err != nil {
		return err
	}
	if strings.Contains(md.GetName(), "/") {
		return bad("config.metadata.name", "holds a '/'")
	}
	if err := checkLen("config.image.image", cfg.GetImage().GetImage(), pathMax, true); err != nil {
		return err
	}
	for i, a := range cfg.GetCommand() {
		if strings.IndexByte(a, 0) >= 0 {
			return bad(fmt.Sprintf("config.command[%d]", i), "holds a NUL byte")
		}
	}
	for i, a := range cfg.GetArgs() {
		if strings.IndexByte(a, 0) >= 0 {
			return bad(fmt.Sprintf("config.args[%d]", i), "holds a NUL byte")
		}
	}
	if err := checkPath("config.working_dir", cfg.GetWorkingDir(), false, true); err != nil {
		return err
	}
	for i, e := range cfg.GetEnvs() {
		f := fmt.Sprintf("config.envs[%d]", i)
		switch k := e.GetKey(); {
		case k == "":
			return bad(f+".key", "is empty")
		case strings.ContainsAny(k, "=\x00"):
			return bad(f+".key", "%q holds '=' or NUL", k)
		case bytes.IndexByte(e.GetValue(), 0) >= 0:
			return bad(f+".value", "holds a NUL byte")
		}
	}
	for i, m := range cfg.GetMounts() {
		f := fmt.Sprintf("config.mounts[%d]", i)
		if err := checkPath(f+".container_path", m.GetContainerPath(), true, true); err != nil {
			return err
		}
		if m.GetImage().GetImage() == "" {
			if err := checkPath(f+".host_path", m.GetHostPath(), true, true); err != nil {
				return err
			}
		}
		if _, ok := runtimeapi.MountPropagation_name[int32(m.GetPropagation())]; !ok {
			return bad(f+".propagation", "%d is not a mount propagation", m.GetPropagation())
		}
	}
	for i, d := range cfg.GetDevices() {
		f := fmt.Sprintf("config.devices[%d]", i)
		if err := checkPath(f+".container_path", d.GetContainerPath(), true, true); err != nil {
			return err
		}
		if err := checkPath(f+".host_path", d.GetHostPath(), true, true); err != nil {
			return err
		}
		if p := d.GetPermissions(); strings.Trim(p, "rwm") != "" {
			return bad(f+".permissions", "%q is not made of r, w and m", p)
		}
	}
	if err := validateLogPath(cfg.GetLogPath(), pod.GetLogDirectory()); err != nil {
		return err
	}
	if err := checkLabels("config.labels", cfg.GetLabels(), maxLabelValue, math.MaxInt); err != nil {
		return err
	}
	if err := checkLabels("config.annotations", cfg.GetAnnotations(), maxAnnotations, maxAnnotations); err != nil {
		return err
	}
	sc := cfg.GetLinux().GetSecurityContext()
	if err := validateIDs("config.linux.security_context", sc.GetRunAsUser(), sc.GetRunAsGroup(), sc.GetSupplementalGroups()); err != nil {
		return err
	}
	for i, p := range sc.GetMaskedPaths() {
		if err := checkPath(fmt.Sprintf("config.linux.security_context.masked_paths[%d]", i), p, true, true); err != nil {
			return err
		}
	}
	for i, p := range sc.GetReadonlyPaths() {
		if err := checkPath(fmt.Sprintf("config.linux.security_context.readonly_paths[%d]", i), p, true, true); err != nil {
			return err
		}
	}
	return validateResources("config.linux.resources", cfg.GetLinux().GetResources())
}

// validateLogPath: CRI's log_path is relative to the pod's log_directory
// and must stay inside it; without a log directory only an absolute path
// names a file.
func validateLogPath(lp, dir string) error {
	if lp == "" {
		return nil
	}
	if err := checkPath("config.log_path", lp, false, false); err != nil {
		return err
	}
	if dir == "" {
		return nil
	}
	if err := checkPath("config.log_path", filepath.Join(dir, lp), false, false); err != nil {
		return err
	}
	if filepath.IsAbs(lp) || hasDotDot(filepath.Clean(lp)) || filepath.Clean(lp) == "." {
		return bad("config.log_path", "%q is not a file inside the pod's log_directory %s", lp, dir)
	}
	return nil
}
