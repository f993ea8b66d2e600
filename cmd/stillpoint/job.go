package main

import (
	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/job"
)

func newJobCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Work with job files (docs/job.md)",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "validate FILE",
		Short: "Check a job file: every error with its line and a hint",
		Args:  cobra.ExactArgs(1),
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
