// dashboard-check validates Grafana dashboard JSON files against Grafana's dashboard schema, as
// the Grafana Foundation SDK generates it: strict decoding (a required field absent, a field of
// the wrong type or a field the schema does not know is an error) and the schema's constraints.
//
//	dashboard-check FILE...
//
// Exits 1 naming each file and what is wrong with it.
package main

import (
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dashboard-check FILE...")
		os.Exit(2)
	}
	plugins.RegisterDefaultPlugins() // panel kinds and the Prometheus query, for their options
	failed := false
	for _, path := range os.Args[1:] {
		if err := check(path); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			failed = true
			continue
		}
		fmt.Printf("%s: valid\n", path)
	}
	if failed {
		os.Exit(1)
	}
}

// explained is nil for no error, and otherwise one that lists every place and problem. The
// generated code can hand back an empty list of errors as an error: that is none.
func explained(err error) error {
	built, ok := err.(cog.BuildErrors)
	if !ok {
		return err
	}
	if len(built) == 0 {
		return nil
	}
	lines := ""
	for _, one := range built {
		lines += fmt.Sprintf("\n  %s: %s", one.Path, one.Message)
	}
	return fmt.Errorf("not valid:%s", lines)
}

func check(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var board dashboard.Dashboard
	if err := board.UnmarshalJSONStrict(raw); err != nil {
		return explained(err)
	}
	return explained(board.Validate())
}
