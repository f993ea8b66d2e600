package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

func newUnlockCmd(g *globals) *cobra.Command {
	var all, force bool
	cmd := &cobra.Command{
		Use:   "unlock",
		Short: "Remove stale locks",
		Long: `Remove locks whose process is gone (same host) or that were not refreshed for 30 minutes
(other hosts).

With --remove-all also the locks whose holder may be gone: those of other hosts not
renewed in the last 6 minutes (a holder renews every 5), such as a machine that
crashed a few minutes ago. A live holder keeps its lock even then — a process alive on
this host, or a lock of another host renewed within 6 minutes — since a prune waits for
it before deleting what it may use; unlock fails naming it. --force removes those too:
only when you know their process is gone, since a prune may then delete data a running
backup uses.`,
		Example: `  stillpoint unlock                         # locks of processes that are gone
  stillpoint unlock --remove-all            # also another host's, if it stopped renewing it
  stillpoint unlock --remove-all --force    # every lock: no stillpoint may be running`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if force && !all {
				return &exitError{code: exitUsage, err: fmt.Errorf("--force goes with --remove-all")}
			}
			return runUnlock(cmd.Context(), g, all, force)
		},
	}
	cmd.Flags().BoolVar(&all, "remove-all", false, "also remove the locks whose holder may be gone (another host's not renewed for 6 minutes)")
	cmd.Flags().BoolVar(&force, "force", false, "with --remove-all: remove live holders' locks too")
	return cmd
}

func runUnlock(ctx context.Context, g *globals, all, force bool) error {
	rep := g.reporter()
	be, err := g.access.Backend()
	if err != nil {
		return err
	}
	if _, err := repo.ReadConfig(ctx, be); err != nil {
		return err
	}
	which := repo.StaleLocks
	switch {
	case force:
		which = repo.AllLocks
	case all:
		which = repo.UnlessLive
	}
	removed, err := repo.RemoveLocks(ctx, be, which)
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
	if err != nil {
		return err
	}
	var live int
	for _, l := range locks {
		rep.Printf("still held: %s\n", l)
		if l.Live() {
			live++
		}
	}
	if all && live > 0 {
		return fmt.Errorf("%d locks of live holders were kept (a prune waits for them before deleting what they may use); "+
			"unlock --remove-all --force removes them too: only when you know their process is gone", live)
	}
	return nil
}
