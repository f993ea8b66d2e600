package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/inspect"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/report"
)

type findFlags struct {
	snapshots  []string
	ignoreCase bool
	outcomes   string
}

func newFindCmd(g *globals) *cobra.Command {
	var f findFlags
	cmd := &cobra.Command{
		Use:   "find PATTERN... [--snapshot SNAPSHOT]...",
		Short: "Find which snapshots hold a path, with its size, time and outcome",
		Long: `List, per snapshot (newest first), the paths that match a PATTERN, with type, mode,
size and modification time. A file that was not backed up whole says how: [changed]
(it changed while it was read), [stale: REASON] (it could not be read, the content is an
older version), [failed: REASON] or [skipped-open] (no content): so the newest snapshot
with a whole copy of a file is the newest one that lists it without a mark.

Patterns follow the --exclude rules: one without a slash matches a base name ("*.db",
"report-2026-??.pdf"); one with a slash matches a whole path, from the root when it starts
with "/" ("/srv/app/**/config.yml"), else any trailing part of it ("app/*.yml"); "**"
spans directories; a trailing slash matches directories only ("cache/").`,
		Example: `  stillpoint find '*.sqlite'
  stillpoint find -i 'readme*' --snapshot latest
  stillpoint find /srv/app/data/db.sqlite --outcome ok,ok-snapshot   # whole copies only
  stillpoint --json find 'app/**/*.yml'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFind(cmd.Context(), g, f, args)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVarP(&f.snapshots, "snapshot", "s", nil, "search only this snapshot (repeatable; default: all)")
	fl.BoolVarP(&f.ignoreCase, "ignore-case", "i", false, "ignore case in names and patterns (a Windows snapshot is always searched without case)")
	fl.StringVar(&f.outcomes, "outcome", "", "only files with these outcomes (comma-separated: ok, ok-snapshot, changed, skipped-open, failed, stale)")
	return cmd
}

func parseOutcomes(list string) (map[outcome.Outcome]bool, error) {
	want := map[outcome.Outcome]bool{}
	if list == "" {
		return want, nil
	}
	for _, s := range strings.Split(list, ",") {
		o, err := outcome.Parse(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		want[o] = true
	}
	return want, nil
}

func runFind(ctx context.Context, g *globals, f findFlags, patterns []string) error {
	rep := g.reporter()
	ctx, out, done := watchPipe(ctx, rep.Out)
	rep.Out = out
	return done(findIn(ctx, rep, g, f, patterns))
}

func findIn(ctx context.Context, rep *report.Reporter, g *globals, f findFlags, patterns []string) error {
	want, err := parseOutcomes(f.outcomes)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	r, snaps, err := loadSnapshots(ctx, g, rep)
	if err != nil {
		return err
	}
	finder, err := inspect.NewFinder(r, patterns, f.ignoreCase)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	// names on Windows differ only by more than case: its snapshots are
	// searched without case, as a Windows user expects
	windowsFinder := finder
	if !f.ignoreCase {
		if windowsFinder, err = inspect.NewFinder(r, patterns, true); err != nil {
			return &exitError{code: exitUsage, err: err}
		}
	}
	sel, err := resolveSnapshotRefs(snaps, f.snapshots)
	if err != nil {
		return err
	}
	if len(f.snapshots) == 0 {
		// newest first, as one looks for the latest copy
		sel = make([]*repo.Snapshot, 0, len(snaps))
		for i := len(snaps) - 1; i >= 0; i-- {
			sel = append(sel, snaps[i])
		}
	}
	lock, err := r.Lock(ctx, false, "find")
	if err != nil {
		return err
	}
	defer lock.Unlock()
	var matches, inSnaps int
	for _, s := range sel {
		first := true
		fd := finder
		if pathmap.ForPaths(s.Paths).IsWindows() {
			fd = windowsFinder
		}
		err := fd.Find(ctx, s.Tree, func(p string, n *repo.Node) error {
			if len(want) > 0 && (n.Type != repo.NodeFile || !want[n.Outcome]) {
				return nil
			}
			matches++
			if first {
				inSnaps++
				first = false
				rep.Printf("snapshot %s of %s, host %s, %s:\n", s.ID.Short(), s.Time.Local().Format("2006-01-02 15:04:05"), s.Host, shownPaths(s))
			}
			if rep.Mode == report.JSON {
				rep.Event(map[string]any{"type": "match", "snapshot": s.ID.String(), "snapshot_time": s.Time,
					"path": p, "node_type": n.Type.String(), "mode": fmt.Sprintf("%04o", n.Mode), "size": n.Size,
					"mtime": time.Unix(0, n.Mtime).UTC(), "uid": n.UID, "gid": n.GID,
					"outcome": n.Outcome.String(), "whole": n.Type != repo.NodeFile || n.Outcome.Whole(), "reason": n.Reason, "holder": n.Holder})
				return nil
			}
			rep.Printf("  %s %12d  %s  %s%s\n", modeString(n), n.Size, time.Unix(0, n.Mtime).Local().Format("2006-01-02 15:04:05"), shownPath(s, p), outcomeMark(n))
			return nil
		})
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", s.ID.Short(), err)
		}
	}
	rep.Event(map[string]any{"type": "summary", "matches": matches, "snapshots_with_matches": inSnaps, "snapshots_searched": len(sel)})
	if matches == 0 {
		rep.Printf("no match in %s\n", snapshotCount(len(sel)))
		return nil
	}
	rep.Printf("%d matches in %d of %s\n", matches, inSnaps, snapshotCount(len(sel)))
	return nil
}

// outcomeMark is "" for a whole file, else "  [outcome: reason]".
func outcomeMark(n *repo.Node) string {
	if n.Type != repo.NodeFile || n.Outcome.Whole() {
		return ""
	}
	m := "  [" + n.Outcome.String()
	if n.Reason != "" {
		m += ": " + n.Reason
	}
	if n.Holder != "" {
		m += ", held by " + n.Holder
	}
	return m + "]"
}

// brokenPipe lets a command whose output is cut short (`find … | head`)
// end quietly, and release its lock: by default a write to a closed stdout
// kills the process with SIGPIPE, leaving its lock behind.
type brokenPipe struct {
	w      io.Writer
	cancel context.CancelFunc
	broke  atomic.Bool
}

// watchPipe wraps w (stdout); the returned context ends when it is
// closed, and done turns the command's error into a quiet exit then.
func watchPipe(ctx context.Context, w io.Writer) (context.Context, io.Writer, func(error) error) {
	signal.Ignore(syscall.SIGPIPE)
	ctx, cancel := context.WithCancel(ctx)
	bp := &brokenPipe{w: w, cancel: cancel}
	return ctx, bp, func(err error) error {
		cancel()
		if bp.broke.Load() {
			return &exitError{code: exitFatal}
		}
		return err
	}
}

func (b *brokenPipe) Write(p []byte) (int, error) {
	n, err := b.w.Write(p)
	if errors.Is(err, syscall.EPIPE) {
		b.broke.Store(true)
		b.cancel()
	}
	return n, err
}
