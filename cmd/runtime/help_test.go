package main

import (
	"testing"

	"github.com/spf13/cobra"
)

// TestEveryCommandHasAnExample walks the command tree: every command a
// user can run (cobra's own help and completion subcommands aside) has a
// short description and an example in its --help.
func TestEveryCommandHasAnExample(t *testing.T) {
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || (c.Name() == "completion") {
				continue
			}
			n++
			if sub.Short == "" || sub.Example == "" {
				t.Errorf("%q: short %q, example %q", sub.CommandPath(), sub.Short, sub.Example)
			}
			walk(sub)
		}
	}
	walk(rootCmd())
	if n < 20 {
		t.Fatalf("only %d commands found; the tree is not what this test expects", n)
	}
}
