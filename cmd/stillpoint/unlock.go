package main

import (
	"context"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

func newUnlockCmd(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "unlock",
		Short: "Remove stale locks",
		Long: `Remove locks whose process is gone (same host) or that were not refreshed for 30 minutes
(other hosts). With --remove-all every lock is removed: only do that when no other
stillpoint is using the repository.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runUnlock(cmd.Context(), g, all)
		},
	}
	cmd.Flags().BoolVar(&all, "remove-all", false, "remove all locks, not only stale ones")
	return cmd
}

func runUnlock(ctx context.Context, g *globals, all bool) error {
	rep := g.reporter()
	be, err := g.access.Backend()
	if err != nil {
		return err
	}
	if _, err := repo.ReadConfig(ctx, be); err != nil {
		return err
	}
	removed, err := repo.RemoveLocks(ctx, be, all)
	for _, l := range removed {
		rep.Printf("removed %s\n", l)
		rep.Event(map[string]any{"type": "lock_removed", "lock": l})
	}
	if err != nil {
		return err
	}
	if len(removed) == 0 {
		rep.Printf("no stale locks\n")
	}
	locks, err := repo.ListLocks(ctx, be)
	if err == nil && len(locks) > 0 {
		for _, l := range locks {
			rep.Printf("still held: %s\n", l)
		}
	}
	return nil
}
