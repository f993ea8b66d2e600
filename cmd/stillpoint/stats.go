package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/inspect"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/report"
)

func newStatsCmd(g *globals) *cobra.Command {
	var mode string
	cmd := &cobra.Command{
		Use:   "stats [SNAPSHOT...]",
		Short: "Show how much a restore writes, or how much the repository stores, for snapshots",
		Long: `Count what snapshots hold; without SNAPSHOT, every snapshot.

--mode restore-size (the default): what restoring each snapshot writes, summed over
  them: regular files and their size (a file with several hard links once), directories,
  other entries; and how many files were not backed up whole (changed while read, or an
  older version kept) or not at all (a restore skips those).
--mode raw-data: what the repository stores for the snapshots: every blob they reference
  (content and trees), counted once however many files and snapshots share it, with its
  uncompressed and its stored size and the compression ratio.

SNAPSHOT is an id, a unique id prefix, "latest", "latest:PATH" or "latest@TAG".`,
		Example: `  stillpoint stats latest
  stillpoint stats --mode raw-data            # what all snapshots take in the repository
  stillpoint --json stats 1a2b3c4d 5e6f7a8b`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStats(cmd.Context(), g, mode, args)
		},
	}
	cmd.Flags().StringVar(&mode, "mode", "restore-size", "restore-size or raw-data")
	return cmd
}

func runStats(ctx context.Context, g *globals, mode string, refs []string) error {
	if mode != "restore-size" && mode != "raw-data" {
		return &exitError{code: exitUsage, err: fmt.Errorf("unknown --mode %q (want restore-size or raw-data)", mode)}
	}
	rep := g.reporter()
	ctx, out, done := watchPipe(ctx, rep.Out)
	rep.Out = out
	return done(statsOf(ctx, rep, g, mode, refs))
}

func statsOf(ctx context.Context, rep *report.Reporter, g *globals, mode string, refs []string) error {
	r, snaps, err := loadSnapshots(ctx, g, rep)
	if err != nil {
		return err
	}
	sel, err := resolveSnapshotRefs(snaps, refs)
	if err != nil {
		return err
	}
	lock, err := r.Lock(ctx, false, "stats")
	if err != nil {
		return err
	}
	defer lock.Unlock()
	if mode == "raw-data" {
		st, err := inspect.RawData(ctx, r, sel)
		if err != nil {
			return err
		}
		printRawStats(rep, st)
		if st.Missing > 0 {
			return &exitError{code: exitFatal, err: fmt.Errorf("%d blobs the snapshots reference are not in the index: the repository is damaged (run `stillpoint check`)", st.Missing)}
		}
		return nil
	}
	st, err := inspect.RestoreSize(ctx, r, sel)
	if err != nil {
		return err
	}
	printSizeStats(rep, st)
	return nil
}

// resolveSnapshotRefs resolves SNAPSHOT arguments, each snapshot once, in
// the order given; none given means every snapshot.
func resolveSnapshotRefs(snaps []*repo.Snapshot, refs []string) ([]*repo.Snapshot, error) {
	if len(refs) == 0 {
		return snaps, nil
	}
	var out []*repo.Snapshot
	seen := map[repo.ID]bool{}
	for _, ref := range refs {
		s, err := findSnapshot(snaps, ref)
		if err != nil {
			return nil, err
		}
		if !seen[s.ID] {
			seen[s.ID] = true
			out = append(out, s)
		}
	}
	return out, nil
}

func snapshotCount(n int) string {
	if n == 1 {
		return "1 snapshot"
	}
	return fmt.Sprintf("%d snapshots", n)
}

func printSizeStats(rep *report.Reporter, st *inspect.SizeStats) {
	rep.Event(map[string]any{"type": "summary", "mode": "restore-size", "stats": st})
	rep.Printf("stats of %s, restore-size (what a restore writes):\n", snapshotCount(st.Snapshots))
	rep.Printf("  files:        %d\n", st.Files)
	rep.Printf("  total size:   %s (%d bytes)\n", report.Bytes(st.Bytes), st.Bytes)
	rep.Printf("  directories:  %d\n", st.Dirs)
	rep.Printf("  other:        %d (symlinks, devices, fifos, sockets)\n", st.Others)
	if st.NotWhole > 0 {
		rep.Printf("  not whole:    %d files, %s: stored while they changed, or an older version kept (`stillpoint ls -l --outcome changed,stale,failed,skipped-open` names them)\n",
			st.NotWhole, report.Bytes(st.NotWholeBytes))
	}
	if st.NotStored > 0 {
		rep.Printf("  not stored:   %d files could not be backed up and have no earlier version: a restore skips them\n", st.NotStored)
	}
}

func printRawStats(rep *report.Reporter, st *inspect.RawStats) {
	rep.Event(map[string]any{"type": "summary", "mode": "raw-data", "stats": st, "compression_ratio": st.Ratio()})
	rep.Printf("stats of %s, raw-data (the blobs stored for them, each once):\n", snapshotCount(st.Snapshots))
	rep.Printf("  blobs:              %d (%d content, %d trees)\n", st.Blobs, st.DataBlobs, st.TreeBlobs)
	rep.Printf("  uncompressed size:  %s (%d bytes)\n", report.Bytes(st.RawBytes), st.RawBytes)
	rep.Printf("  stored size:        %s (%d bytes)\n", report.Bytes(st.StoredBytes), st.StoredBytes)
	if st.StoredBytes > 0 {
		rep.Printf("  compression ratio:  %.2fx (space saving %.1f%%)\n", st.Ratio(), 100*(1-float64(st.StoredBytes)/float64(max(st.RawBytes, 1))))
	}
	if st.Missing > 0 {
		rep.Printf("  missing:            %d blobs are not in the index\n", st.Missing)
	}
}
