package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/buildinfo"
)

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show the version, commit, build date, Go version and platform",
		Long: `Show which stillpoint this is: its version, the commit it was built from (with
"uncommitted changes" when the tree had some), the build date of a release (else the
commit's time), the Go version it was built with, and the platform. --version prints
the same; --json prints it as one object.`,
		Example: `  stillpoint version
  stillpoint version --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := buildinfo.Get()
			if g.json {
				data, err := json.Marshal(in)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", data)
				return err
			}
			_, err := fmt.Fprint(cmd.OutOrStdout(), in.Long())
			return err
		},
	}
}
