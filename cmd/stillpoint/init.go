package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/job"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/report"
	"github.com/stillpoint-backup/stillpoint/internal/run"
)

func newInitCmd(g *globals) *cobra.Command {
	var (
		compression, mode string
		immutable         int
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a repository",
		Long: `Create a repository at --repo (or the default location).

With a password (--password-file or $STILLPOINT_PASSWORD) the repository is
unlocked by that password. Without one, a random key is written to a key file
(mode 0600); keep a copy of it somewhere else: without it the backups cannot be read.

With --immutable DAYS (an S3 bucket created with object lock) every file is
written with a retention of DAYS: nobody can delete a backup in its first DAYS
days, and prune keeps what the snapshots need retained (README, Immutable backups).`,
		Example: `  stillpoint init                              # the default repository, a new key file
  stillpoint init --repo /mnt/backup/repo --compression better
  stillpoint init --repo s3:https://s3.eu-west-1.amazonaws.com/my-bucket/web-1 --password-file /etc/stillpoint/password`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runInit(cmd.Context(), g, initOptions{compression: compression, immutableDays: immutable, immutableMode: mode})
		},
	}
	cmd.Flags().StringVar(&compression, "compression", repo.DefaultConfig.Compression, "zstd level for new data: off, fastest, default, better")
	cmd.Flags().IntVar(&immutable, "immutable", 0, "retain every file for DAYS with the bucket's object lock (S3 only)")
	cmd.Flags().StringVar(&mode, "immutable-mode", "compliance", "object lock mode with --immutable: compliance (nobody can delete early) or governance")
	return cmd
}

type initOptions struct {
	compression   string
	immutableDays int
	immutableMode string
}

func runInit(ctx context.Context, g *globals, o initOptions) error {
	// before anything is written: a repository with a level no stillpoint
	// knows could not be opened
	if !slices.Contains(job.CompressionLevels, o.compression) {
		return &exitError{code: exitUsage, err: fmt.Errorf("--compression %q: use one of %s", o.compression, strings.Join(job.CompressionLevels, ", "))}
	}
	cfg := repo.DefaultConfig
	cfg.Compression = o.compression
	if o.immutableDays != 0 {
		if o.immutableDays < 1 || o.immutableDays > repo.MaxImmutableDays {
			return &exitError{code: exitUsage, err: fmt.Errorf("--immutable %d: give the days of retention, from 1 to %d", o.immutableDays, repo.MaxImmutableDays)}
		}
		mode, err := backend.ParseRetentionMode(o.immutableMode)
		if err != nil {
			return &exitError{code: exitUsage, err: fmt.Errorf("--immutable-mode: %w", err)}
		}
		cfg.Immutable = &repo.Immutability{Days: o.immutableDays, Mode: mode}
	}
	r, created, err := run.Create(ctx, g.access, cfg)
	if err != nil {
		return err
	}
	announceCreated(g.reporter(), r, created)
	return nil
}

func announceCreated(rep *report.Reporter, r *repo.Repository, c *run.Created) {
	ev := map[string]any{"type": "repository_created", "repository": c.Repository, "id": r.Config().ID, "key_file": c.KeyFile}
	if im := r.Immutable(); im != nil {
		ev["immutable"] = im
	}
	rep.Event(ev)
	rep.Printf("created repository %s at %s\n", r.Config().ID[:8], c.Repository)
	if im := r.Immutable(); im != nil {
		rep.Printf("immutable: every file is retained for %d days (object lock, %s)\n", im.Days, im.Mode)
	}
	if c.KeyFile != "" {
		rep.Printf("its key is in %s (mode 0600)\n", c.KeyFile)
		rep.Printf("KEEP A COPY OF THAT KEY FILE ELSEWHERE: without it these backups cannot be restored.\n")
	}
}
