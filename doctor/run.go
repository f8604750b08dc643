package doctor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/husk-runtime/husk/criclient"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Report is what a doctor run found (and, with fix, did): `husk doctor
// -o json`.
type Report struct {
	// Source is where the live pods came from: "daemon", or "records"
	// when the daemon could not be asked.
	Source    string     `json:"source"`
	Checks    []Check    `json:"checks"`
	Leftovers []Leftover `json:"leftovers"`
	// With --fix: what was done, and what an audit after it still finds.
	Fixed     []Action   `json:"fixed,omitempty"`
	Remaining []Leftover `json:"remaining,omitempty"`

	fixed  bool  // fix ran (there were leftovers to remove)
	fixErr error // what fix could not do
}

// RunOptions say what Run checks against.
type RunOptions struct {
	ConfigPath string // the configuration file read (or not there)
	// Endpoint is the CRI endpoint to ask for the live pods; Socket the
	// one this configuration's daemon serves. The daemon is asked only
	// when they are the same.
	Endpoint, Socket string
	Fix              bool // remove the leftovers found
}

// Run checks the node and audits it for leftovers, removing them with
// opts.Fix. The error is for a doctor that could not run at all; what
// the run found is the report (Report.Err).
func Run(ctx context.Context, dcfg Config, opts RunOptions) (*Report, error) {
	cfgPath, endpoint, fix := opts.ConfigPath, opts.Endpoint, opts.Fix
	host, err := NewHost(dcfg)
	if err != nil {
		return nil, err
	}
	rep := &Report{Leftovers: []Leftover{}}
	cfgCheck := Check{Name: "config", Status: OK, Reason: "read " + cfgPath}
	if _, err := os.Stat(cfgPath); err != nil {
		cfgCheck.Reason = "no " + cfgPath + ": the built-in defaults"
	}
	rep.Checks = append(rep.Checks, cfgCheck)

	list, daemonCheck, src := daemonLister(ctx, endpoint, opts.Socket, dcfg, host)
	rep.Source = src
	rep.Checks = append(rep.Checks, daemonCheck)
	rep.Checks = append(rep.Checks, KernelChecks(host)...)
	rep.Checks = append(rep.Checks, CNIChecks(dcfg)...)
	rep.Checks = append(rep.Checks, RegistryChecks(dcfg)...)

	audit, err := RunAudit(ctx, dcfg, host, list)
	if err != nil {
		rep.Checks = append(rep.Checks, Check{Name: "leftovers/audit", Status: Fail, Reason: "audit failed: " + oneLineErr(err)})
	} else {
		rep.Leftovers = append(rep.Leftovers, audit.Leftovers...)
		rep.Checks = append(rep.Checks, leftoverSummary(audit, src))
		if len(audit.Foreign) > 0 {
			rep.Checks = append(rep.Checks, Check{Name: "leftovers/foreign", Status: Warn,
				Reason: fmt.Sprintf("%d %s under /husk name no pod of this husk (root %s), e.g. %s: another husk daemon on this node may own them; left alone",
					len(audit.Foreign), pluralS(len(audit.Foreign), "cgroup", "cgroups"), dcfg.Root, strings.Join(audit.Foreign[:min(3, len(audit.Foreign))], ", "))})
		}
	}

	var fixErr error
	if fix && audit != nil && len(audit.Leftovers) > 0 {
		rep.Fixed, fixErr = Fix(ctx, dcfg, host, list, audit.Leftovers)
		again, err := RunAudit(ctx, dcfg, host, list)
		if err != nil {
			fixErr = errors.Join(fixErr, err)
		} else {
			rep.Remaining = again.Leftovers
		}
	}

	rep.fixed = fix && audit != nil && len(audit.Leftovers) > 0
	rep.fixErr = fixErr
	return rep, nil
}

// Err is the run's verdict: nil when no check failed and no leftover is
// (left) found.
func (rep *Report) Err() error {
	failed := 0
	for _, c := range rep.Checks {
		// The leftovers line is counted as leftovers, which fix may
		// have removed since.
		if c.Status == Fail && c.Name != "leftovers" {
			failed++
		}
	}
	left := len(rep.Leftovers)
	if rep.fixed {
		left = len(rep.Remaining)
	}
	if rep.fixErr != nil {
		return fmt.Errorf("doctor --fix: %s", oneLineErr(rep.fixErr))
	}
	if failed > 0 || left > 0 {
		return fmt.Errorf("doctor: %d failed %s, %d %s", failed, pluralS(failed, "check", "checks"), left, pluralS(left, "leftover", "leftovers"))
	}
	return nil
}

func leftoverSummary(a *Audit, src string) Check {
	from := "the daemon's"
	if src == "records" {
		from = "the records'"
	}
	c := Check{Name: "leftovers", Status: OK,
		Reason: fmt.Sprintf("none; %d live %s (%s list)", len(a.Known.Pods), pluralS(len(a.Known.Pods), "pod", "pods"), from)}
	if n := len(a.Leftovers); n > 0 {
		c.Status = Fail
		c.Reason = fmt.Sprintf("%d husk %s of no live pod (%d live %s, %s list); `husk doctor --fix` removes them",
			n, pluralS(n, "leftover", "leftovers"), len(a.Known.Pods), pluralS(len(a.Known.Pods), "pod", "pods"), from)
	}
	return c
}

// daemonLister picks where the live pods come from. The daemon is asked
// only when it is husk serving this configuration's socket and every pod
// it lists has a record under this root: with a daemon of another root,
// this root's pods would all look dead.
func daemonLister(ctx context.Context, endpoint, socket string, dcfg Config, host *Host) (Lister, Check, string) {
	records := FromRecords(dcfg, host.Now)
	fallback := func(why string) (Lister, Check, string) {
		return records, Check{Name: "daemon", Status: Warn, Reason: why + ": auditing from the pod records on disk instead"}, "records"
	}
	sock := strings.TrimPrefix(endpoint, "unix://")
	if filepath.Clean(sock) != filepath.Clean(socket) {
		return fallback(fmt.Sprintf("--endpoint %s is not the socket of this configuration (%s)", endpoint, socket))
	}
	if _, err := os.Stat(sock); err != nil {
		return fallback(fmt.Sprintf("no daemon socket at %s", sock))
	}
	c, err := criclient.Dial(endpoint, 10*time.Second)
	if err != nil {
		return fallback(oneLineErr(err))
	}
	vctx, cancel := c.Ctx(ctx)
	v, err := c.Runtime.Version(vctx, &runtimeapi.VersionRequest{})
	cancel()
	if err != nil {
		c.Close()
		return fallback(fmt.Sprintf("daemon not reachable at %s (%s)", endpoint, oneLineErr(criclient.Wrap(err, "version"))))
	}
	if v.RuntimeName != "husk" {
		c.Close()
		return fallback(fmt.Sprintf("%s serves %s, not husk", endpoint, v.RuntimeName))
	}
	list := func(ctx context.Context) (Known, error) {
		k := Known{Source: "daemon", Pods: map[string]bool{}, Containers: map[string]bool{}}
		lctx, cancel := c.Ctx(ctx)
		defer cancel()
		pods, err := c.Runtime.ListPodSandbox(lctx, &runtimeapi.ListPodSandboxRequest{})
		if err != nil {
			return k, criclient.Wrap(err, "list pods")
		}
		ctrs, err := c.Runtime.ListContainers(lctx, &runtimeapi.ListContainersRequest{})
		if err != nil {
			return k, criclient.Wrap(err, "list containers")
		}
		// A pod being removed may lose its dir before the daemon stops
		// listing it, so only a daemon none of whose pods are here is
		// taken for one of another root.
		here := 0
		for _, p := range pods.Items {
			if _, err := os.Stat(filepath.Join(dcfg.podsDir(), p.Id)); err == nil {
				here++
			}
			k.Pods[p.Id] = true
		}
		if len(pods.Items) > 0 && here == 0 {
			return k, fmt.Errorf("the daemon at %s lists %d pods, none with a dir under root %s: it serves another root; not auditing against it", endpoint, len(pods.Items), dcfg.Root)
		}
		for _, ct := range ctrs.Containers {
			k.Containers[ct.Id] = true
		}
		return k, nil
	}
	k, err := list(ctx)
	if err != nil {
		c.Close()
		return fallback(oneLineErr(err))
	}
	return list, Check{Name: "daemon", Status: OK,
		Reason: fmt.Sprintf("husk %s at %s, %d %s", v.RuntimeVersion, endpoint, len(k.Pods), pluralS(len(k.Pods), "pod", "pods"))}, "daemon"
}

func oneLineErr(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

func pluralS(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
