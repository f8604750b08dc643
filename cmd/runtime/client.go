package main

// The flags and output the CRI client commands share: --endpoint and
// --timeout (the client itself is criclient), -o table|json|yaml.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/husk-runtime/husk/criclient"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// clientFlags are the persistent flags of every CRI client command.
var clientFlags struct {
	endpoint string
	timeout  time.Duration
}

// addClientFlags registers --endpoint and --timeout on root, for every
// command that talks CRI.
func addClientFlags(f *pflag.FlagSet) {
	f.StringVar(&clientFlags.endpoint, "endpoint", criclient.DefaultEndpoint, "CRI endpoint of the runtime (husk's or containerd's socket, e.g. unix:///run/containerd/containerd.sock)")
	f.DurationVar(&clientFlags.timeout, "timeout", 0, "timeout of each CRI call (default 2m for pod run, 30m for image import/export, none for pull, 10s otherwise)")
}

// dial connects to --endpoint; def is the command's default call timeout
// (--timeout overrides it).
func dial(def time.Duration) (*criclient.Client, error) {
	t := clientFlags.timeout
	if t == 0 {
		t = def
	}
	return criclient.Dial(clientFlags.endpoint, t)
}

// dialCall is dial for a command that makes its calls under one timeout:
// the client, the context of its calls, and done, which ends both.
func dialCall(parent context.Context, def time.Duration) (*criclient.Client, context.Context, func(), error) {
	c, err := dial(def)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := c.Ctx(parent)
	return c, ctx, func() { cancel(); c.Close() }, nil
}

// Output formats of list and inspect commands.
const (
	outTable = "table"
	outJSON  = "json"
	outYAML  = "yaml"
)

func addOutputFlag(cmd *cobra.Command, p *string, def string, allowed ...string) {
	cmd.Flags().StringVarP(p, "output", "o", def, "output format: "+strings.Join(allowed, ", "))
}

func checkOutput(o string, allowed ...string) error {
	for _, a := range allowed {
		if o == a {
			return nil
		}
	}
	return fmt.Errorf("-o %q: want one of %s", o, strings.Join(allowed, ", "))
}

// protoJSON renders a CRI message the way crictl does (camelCase fields).
func protoJSON(m proto.Message) (json.RawMessage, error) {
	b, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", m, err)
	}
	return b, nil
}

// printProto writes the CRI message m as indented JSON or YAML.
func printProto(w io.Writer, format string, m proto.Message) error {
	j, err := protoJSON(m)
	if err != nil {
		return err
	}
	return printStructured(w, format, j)
}

// printStructured writes v (JSON-encodable; CRI messages go through
// protoJSON first) as indented JSON or YAML.
func printStructured(w io.Writer, format string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	if format == outYAML {
		if b, err = yaml.JSONToYAML(b); err != nil {
			return fmt.Errorf("encode output as YAML: %w", err)
		}
		_, err = w.Write(b)
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// ago renders a CRI timestamp (ns since the epoch) as crictl does.
func ago(ns int64) string {
	if ns == 0 {
		return "-"
	}
	return humanDuration(time.Since(time.Unix(0, ns))) + " ago"
}

func humanDuration(d time.Duration) string {
	switch s := int(d.Seconds()); {
	case s < 1:
		return "Less than a second"
	case s == 1:
		return "1 second"
	case s < 60:
		return fmt.Sprintf("%d seconds", s)
	}
	switch m := int(d.Minutes()); {
	case m == 1:
		return "About a minute"
	case m < 60:
		return fmt.Sprintf("%d minutes", m)
	}
	switch h := int(d.Hours() + 0.5); {
	case h == 1:
		return "About an hour"
	case h < 48:
		return fmt.Sprintf("%d hours", h)
	case h < 24*7*2:
		return fmt.Sprintf("%d days", h/24)
	default:
		return fmt.Sprintf("%d weeks", h/24/7)
	}
}

func warnf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "warning: "+format+"\n", args...)
}
