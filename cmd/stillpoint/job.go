package main

import (
	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/job"
)

func newJobCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Work with job files (docs/job.md)",
		Example: `  stillpoint job validate /etc/stillpoint/app.yaml
  stillpoint backup --job /etc/stillpoint/app.yaml`,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "validate FILE",
		Short: "Check a job file: every error with its line and a hint",
		Long: `Read a job file (docs/job.md) as backup --job reads it, and print every error with
its line and a hint, and the warnings. Exit code 1 when the file is not a valid job.`,
		Example: `  stillpoint job validate /etc/stillpoint/app.yaml
  stillpoint job validate --json app.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep := g.reporter()
			j, warnings, err := job.Load(args[0])
			for _, w := range warnings {
				rep.Warn("", "job", w.String())
			}
			if err != nil {
				rep.Event(map[string]any{"type": "summary", "file": args[0], "valid": false, "error": err.Error()})
				return &exitError{code: exitFatal, err: err}
			}
			rep.Event(map[string]any{"type": "summary", "file": args[0], "valid": true, "sources": len(j.Sources), "writers": len(j.Writers)})
			hooks := 0
			for _, hs := range j.Hooks {
				hooks += len(hs)
			}
			rep.Printf("%s is valid: %d sources, %d writers, %d hooks\n", args[0], len(j.Sources), len(j.Writers), hooks)
			return nil
		},
	})
	return cmd
}
