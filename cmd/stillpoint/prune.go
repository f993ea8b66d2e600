package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/report"
)

type pruneFlags struct {
	maxUnused     string
	maxRepackSize string
	dryRun        bool
	now           bool
}

func newPruneCmd(g *globals) *cobra.Command {
	f := &pruneFlags{}
	cmd := &cobra.Command{
		Use:   "prune [flags]",
		Short: "Free the space no snapshot uses, while backups go on",
		Long: `Delete the data no snapshot needs (after forget), and repack packs that are
mostly unused, without stopping backups: they may run, on this host or others,
for the whole time, and every snapshot they write restores afterwards.

prune marks what no snapshot needs, and deletes it once every backup, restore or
check that was running when it marked has ended (a later prune does it if they
still run when this one ends); on a repository nothing else uses, it deletes at
once. Before deleting it looks again at the snapshots written meanwhile and keeps
what they need. --now takes the repository to itself instead (it fails while a
backup runs) and deletes at once.

Partly used packs are repacked, the most unused first, until the unused space
left is at most --max-unused (a percentage of the repository's size after prune,
a size, or "unlimited"), copying at most --max-repack-size. What prune will delete
and repack, and the space it frees, is printed before it starts; --dry-run
prints only that. The protocol is in docs/format.md (Prune).`,
		Example: `  stillpoint forget --keep-daily 7 --keep-weekly 5 && stillpoint prune
  stillpoint prune --dry-run                  # what would be freed, and nothing done
  stillpoint prune --max-unused 0             # repack until no unused space is left
  stillpoint prune --max-repack-size 2G       # bound the copying of one run
  stillpoint prune --now                      # no backup running: free it all at once`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := pruneOptions(*f)
			if err != nil {
				return err
			}
			return runPrune(cmd.Context(), g, opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.maxUnused, "max-unused", "5%", "unused space to leave in packs: a `limit` as a percentage of the repository after prune, a size (500M) or unlimited")
	fl.StringVar(&f.maxRepackSize, "max-repack-size", "", "copy at most this `size` of packs when repacking (e.g. 2G; default: no bound)")
	fl.BoolVarP(&f.dryRun, "dry-run", "n", false, "print what would be deleted and repacked, and the space freed; change nothing")
	fl.BoolVar(&f.now, "now", false, "take an exclusive lock (no backup may run) and delete at once")
	fl.SortFlags = false
	return cmd
}

// pruneDefaults are the options of a plain `stillpoint prune`; callers
// such as forget --prune start from them.
func pruneDefaults() repo.PruneOptions {
	return repo.PruneOptions{MaxUnused: repo.DefaultMaxUnused}
}

func pruneOptions(f pruneFlags) (repo.PruneOptions, error) {
	o := pruneDefaults()
	o.DryRun, o.Now = f.dryRun, f.now
	if f.dryRun && f.now {
		return o, &exitError{code: exitUsage, err: fmt.Errorf("--dry-run and --now: choose one")}
	}
	mu, err := repo.ParseMaxUnused(f.maxUnused)
	if err != nil {
		return o, &exitError{code: exitUsage, err: err}
	}
	o.MaxUnused = mu
	if f.maxRepackSize != "" {
		n, err := repo.ParseSize(f.maxRepackSize)
		if err != nil || n <= 0 {
			return o, &exitError{code: exitUsage, err: fmt.Errorf("--max-repack-size %q: give a size above 0 such as 500M or 2G", f.maxRepackSize)}
		}
		o.MaxRepackSize = n
	}
	return o, nil
}

// runPrune prunes the repository g names with opts (start from
// pruneDefaults()). It takes its own lock: a caller must not hold one.
func runPrune(ctx context.Context, g *globals, opts repo.PruneOptions) error {
	rep := g.reporter()
	r, err := openRepo(ctx, g)
	if err != nil {
		return err
	}
	if !opts.DryRun {
		// append-only credentials fail here, before anything is written;
		// the stale locks they left are removed
		notes, err := r.PrepareDelete(ctx, "prune")
		for _, n := range notes {
			rep.Warn("", "prune", n)
		}
		if err != nil {
			return err
		}
	}
	opts.Step = rep.Step
	opts.Track = func(phase, unit string, sample func() (int64, int64)) func() {
		return rep.Track(phase, func() report.Status {
			done, total := sample()
			if unit == "bytes" {
				return report.Status{BytesDone: done, BytesTotal: total, ScanDone: total > 0}
			}
			return report.Status{FilesDone: done, FilesTotal: total, ScanDone: total > 0, Unit: unit}
		})
	}
	opts.Plan = func(p *repo.PruneResult) { printPrunePlan(rep, p, opts) }
	res, err := r.Prune(ctx, opts)
	if res != nil {
		for _, n := range res.Notes {
			rep.Warn("", "prune", n)
		}
	}
	if err != nil {
		return err
	}
	rep.Event(map[string]any{"type": "summary", "result": res})
	printPruneResult(rep, res)
	return nil
}

func printPrunePlan(rep *report.Reporter, p *repo.PruneResult, opts repo.PruneOptions) {
	rep.Printf("%d snapshots; %d packs, %s, of which %s unused\n", p.Snapshots, p.Packs, report.Bytes(p.Bytes), report.Bytes(p.UnusedBytes))
	if p.PendingPacks > 0 {
		rep.Printf("marked by an earlier prune:  %d packs, %s\n", p.PendingPacks, report.Bytes(p.PendingBytes))
	}
	rep.Printf("to delete (no snapshot uses them): %d packs, %s\n", p.GarbagePacks, report.Bytes(p.GarbageBytes))
	rep.Printf("to repack (partly used):           %d packs, %s\n", p.RepackPacks, report.Bytes(p.RepackBytes))
	freed := p.UnusedBytes - p.UnusedAfter // garbage, and what repacking leaves out
	rep.Printf("frees about %s; %s unused left of %s (--max-unused %s)\n",
		report.Bytes(max(freed, 0)), report.Bytes(p.UnusedAfter), report.Bytes(p.SizeAfter), opts.MaxUnused)
	if opts.DryRun {
		rep.Printf("dry run: nothing was changed\n")
	}
}

func printPruneResult(rep *report.Reporter, res *repo.PruneResult) {
	if res.DryRun {
		if len(res.Waiting) > 0 {
			rep.Printf("%d marks from earlier prunes wait for %s\n", res.MarksPending, holders(res.Waiting))
		}
		return
	}
	if res.RepackPacks > 0 {
		rep.Printf("repacked %d packs: %d blobs copied into %d new packs (%s)\n", res.RepackPacks, res.RepackBlobs, res.NewPacks, report.Bytes(res.RepackWritten))
	}
	if res.MarksSwept > 0 {
		rep.Printf("deleted %d packs, %s\n", res.RemovedPacks, report.Bytes(res.RemovedBytes))
	}
	if res.KeptPacks > 0 {
		rep.Printf("kept %d marked packs (%s) that snapshots written meanwhile use\n", res.KeptPacks, report.Bytes(res.KeptBytes))
	}
	if res.MarksPending > 0 {
		rep.Printf("%d packs (%s) are marked and will be deleted by a later prune after %s ends (or at once with prune --now)\n",
			res.PendingPacks, report.Bytes(res.PendingBytes), holders(res.Waiting))
	}
	if res.MarksSwept == 0 && res.MarksPending == 0 && res.GarbagePacks == 0 && res.RepackPacks == 0 {
		rep.Printf("nothing to prune\n")
	}
}

func holders(ls []repo.MarkLock) string {
	seen := map[string]bool{}
	var parts []string
	for _, l := range ls {
		if seen[l.Session] {
			continue
		}
		seen[l.Session] = true
		parts = append(parts, l.String())
	}
	if len(parts) > 3 {
		parts = append(parts[:3], fmt.Sprintf("%d more", len(parts)-3))
	}
	return strings.Join(parts, ", ")
}
