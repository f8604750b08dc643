package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"sigs.k8s.io/yaml"
)

func infoCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "info",
		Short: "Show the runtime's status, conditions, configuration and CNI network",
		Long: `Show what the runtime at --endpoint reports about itself, like crictl info:
its name and version (Version), its conditions (RuntimeReady, NetworkReady
and why not), runtime handlers and their features, the cgroup driver
(RuntimeConfig), and the verbose Status information: for husk the CNI
network it selected (or why none is usable) and its configuration; for
containerd its CRI plugin config and CNI config.`,
		Example: `  husk info
  husk info -o yaml
  husk --endpoint unix:///run/containerd/containerd.sock info -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, outTable, outJSON, outYAML); err != nil {
				return err
			}
			c, ctx, done, err := dialCall(cmd.Context(), 10*time.Second)
			if err != nil {
				return err
			}
			defer done()
			ver, err := c.Runtime.Version(ctx, &runtimeapi.VersionRequest{})
			if err != nil {
				return criclient.Wrap(err, "runtime version")
			}
			st, err := c.Runtime.Status(ctx, &runtimeapi.StatusRequest{Verbose: true})
			if err != nil {
				return criclient.Wrap(err, "runtime status")
			}
			// Older runtimes do not implement RuntimeConfig: it is extra.
			rc, _ := c.Runtime.RuntimeConfig(ctx, &runtimeapi.RuntimeConfigRequest{})
			if output != outTable {
				return printInfoStructured(os.Stdout, output, ver, st, rc)
			}
			return renderInfo(os.Stdout, ver, st, rc)
		},
	}
	addOutputFlag(cmd, &output, outTable, outTable, outJSON, outYAML)
	return cmd
}

func printInfoStructured(w io.Writer, format string, ver *runtimeapi.VersionResponse, st *runtimeapi.StatusResponse, rc *runtimeapi.RuntimeConfigResponse) error {
	out := struct {
		Version       json.RawMessage            `json:"version"`
		Status        json.RawMessage            `json:"status"`
		RuntimeConfig json.RawMessage            `json:"runtimeConfig,omitempty"`
		Info          map[string]json.RawMessage `json:"info,omitempty"`
	}{Info: rawInfo(st.Info)}
	var err error
	if out.Version, err = protoJSON(ver); err != nil {
		return err
	}
	if out.Status, err = protoJSON(&runtimeapi.StatusResponse{Status: st.Status, RuntimeHandlers: st.RuntimeHandlers, Features: st.Features}); err != nil {
		return err
	}
	if rc != nil {
		if out.RuntimeConfig, err = protoJSON(rc); err != nil {
			return err
		}
	}
	return printStructured(w, format, out)
}

// rawInfo embeds the runtime's JSON info values as JSON, other values as
// strings.
func rawInfo(info map[string]string) map[string]json.RawMessage {
	if len(info) == 0 {
		return nil
	}
	out := map[string]json.RawMessage{}
	for k, v := range info {
		if json.Valid([]byte(v)) {
			out[k] = json.RawMessage(v)
		} else {
			b, _ := json.Marshal(v)
			out[k] = b
		}
	}
	return out
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// renderInfo writes the human-readable summary.
func renderInfo(w io.Writer, ver *runtimeapi.VersionResponse, st *runtimeapi.StatusResponse, rc *runtimeapi.RuntimeConfigResponse) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Runtime:\t%s %s (CRI %s)\n", ver.RuntimeName, ver.RuntimeVersion, ver.RuntimeApiVersion)
	fmt.Fprintf(tw, "Endpoint:\t%s\n", clientFlags.endpoint)
	if d := rc.GetLinux().GetCgroupDriver(); rc != nil {
		fmt.Fprintf(tw, "Cgroup driver:\t%s\n", strings.ToLower(d.String()))
	}
	fmt.Fprintln(tw, "Conditions:")
	for _, cnd := range st.GetStatus().GetConditions() {
		line := fmt.Sprintf("  %s\t%v", cnd.Type, cnd.Status)
		if cnd.Reason != "" || cnd.Message != "" {
			line += "\t" + strings.TrimPrefix(cnd.Reason+": "+cnd.Message, ": ")
		}
		fmt.Fprintln(tw, line)
	}
	if hs := st.GetRuntimeHandlers(); len(hs) > 0 {
		fmt.Fprintln(tw, "Runtime handlers:")
		for _, h := range hs {
			name := h.Name
			if name == "" {
				name = "(default)"
			}
			f := h.GetFeatures()
			fmt.Fprintf(tw, "  %s\trecursive read-only mounts: %s, user namespaces: %s\n", name,
				yesNo(f.GetRecursiveReadOnlyMounts()), yesNo(f.GetUserNamespaces()))
		}
	}
	if f := st.GetFeatures(); f != nil {
		fmt.Fprintf(tw, "Features:\tsupplemental groups policy: %s\n", yesNo(f.GetSupplementalGroupsPolicy()))
	}
	info := st.GetInfo()
	shown := map[string]bool{}
	if cni, ok := criclient.ParseCNIInfo(info); ok {
		shown["cni"], shown["cniconfig"] = true, true
		fmt.Fprintln(tw, "CNI:")
		fmt.Fprintf(tw, "  conf dir\t%s\n", cni.ConfDir)
		fmt.Fprintf(tw, "  plugin dirs\t%s\n", strings.Join(cni.BinDirs, ", "))
		for _, n := range cni.Networks {
			fmt.Fprintf(tw, "  network\t%s\n", n)
		}
		if len(cni.Networks) == 0 {
			fmt.Fprintf(tw, "  network\tnone: %s\n", cni.Reason)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// The rest of the verbose info (husk's config, containerd's config,
	// golang, ...), as YAML under each key: it is the runtime's own.
	keys := make([]string, 0, len(info))
	for k := range info {
		if !shown[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := info[k]
		var body []byte
		if json.Valid([]byte(v)) {
			y, err := yaml.JSONToYAML([]byte(v))
			if err != nil {
				return fmt.Errorf("render info %q: %w", k, err)
			}
			body = y
		} else {
			body = []byte(v + "\n")
		}
		title := k
		if k == "config" {
			title = "Config"
		}
		if _, err := fmt.Fprintf(w, "%s:\n%s", title, indent(string(body), "  ")); err != nil {
			return err
		}
	}
	return nil
}

func indent(s, prefix string) string {
	lines := strings.SplitAfter(s, "\n")
	var b strings.Builder
	for _, l := range lines {
		if l == "" {
			continue
		}
		b.WriteString(prefix + l)
	}
	return b.String()
}
