package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/job"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/report"
	"github.com/stillpoint-backup/stillpoint/internal/run"
)

func newInitCmd(g *globals) *cobra.Command {
	var compression string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a repository",
		Long: `Create a repository at --repo (or the default location).

With a password (--password-file or $STILLPOINT_PASSWORD) the repository is
unlocked by that password. Without one, a random key is written to a key file
(mode 0600); keep a copy of it somewhere else: without it the backups cannot be read.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runInit(cmd.Context(), g, compression)
		},
	}
	cmd.Flags().StringVar(&compression, "compression", repo.DefaultConfig.Compression, "zstd level for new data: off, fastest, default, better")
	return cmd
}

func runInit(ctx context.Context, g *globals, compression string) error {
	// before anything is written: a repository with a level no stillpoint
	// knows could not be opened
	if !slices.Contains(job.CompressionLevels, compression) {
		return &exitError{code: exitUsage, err: fmt.Errorf("--compression %q: use one of %s", compression, strings.Join(job.CompressionLevels, ", "))}
	}
	cfg := repo.DefaultConfig
	cfg.Compression = compression
	r, created, err := run.Create(ctx, g.access, cfg)
	if err != nil {
		return err
	}
	announceCreated(g.reporter(), r, created)
	return nil
}

func announceCreated(rep *report.Reporter, r *repo.Repository, c *run.Created) {
	rep.Event(map[string]any{"type": "repository_created", "repository": c.Repository, "id": r.Config().ID, "key_file": c.KeyFile})
	rep.Printf("created repository %s at %s\n", r.Config().ID[:8], c.Repository)
	if c.KeyFile != "" {
		rep.Printf("its key is in %s (mode 0600)\n", c.KeyFile)
		rep.Printf("KEEP A COPY OF THAT KEY FILE ELSEWHERE: without it these backups cannot be restored.\n")
	}
}
