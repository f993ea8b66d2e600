package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/livefile"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/report"
	"github.com/stillpoint-backup/stillpoint/internal/run"
	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
)

type backupFlags struct {
	excludes   []string
	tags       []string
	host       string
	force      bool
	snapshot   string
	openFiles  string
	retries    int
	stagingDir string
}

func newBackupCmd(g *globals) *cobra.Command {
	var f backupFlags
	cmd := &cobra.Command{
		Use:   "backup [flags] PATH...",
		Short: "Back up files and directories",
		Long: `Back up PATHs into the repository, creating it first if it does not exist.

Only files whose size, times or inode changed since the last backup of the same
paths are read again. Exit code 0: every file stored whole; 3: the snapshot was
written but some files were not read whole (see the summary); 1: nothing was recorded.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBackup(cmd.Context(), g, f, args)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVarP(&f.excludes, "exclude", "e", nil, "exclude paths matching PATTERN (repeatable; \"*.tmp\", \"cache/\", \"/abs/path\")")
	fl.StringArrayVar(&f.tags, "tag", nil, "tag the snapshot (repeatable)")
	fl.StringVar(&f.host, "host", "", "host name to record (default: this machine's)")
	fl.BoolVar(&f.force, "force", false, "read every file, ignoring the previous snapshot")
	fl.StringVar(&f.snapshot, "snapshot", "auto", "snapshot policy: off (read live), auto (snap when a provider fits), on (same, warn when reading live), required (fail unless every source can be snapped)")
	fl.StringVar(&f.openFiles, "open-files", "retry", "files read live that are open for writing or locked: read (store, flag if changed), retry, skip (try again at the end), stage (copy first)")
	fl.IntVar(&f.retries, "retries", livefile.DefaultRetries, "attempts after the first for a file that changed or is locked (at most 10)")
	fl.StringVar(&f.stagingDir, "staging-dir", "", "where --open-files stage copies files (default "+filepath.Join(run.CacheDir(), "staging")+"); must be outside the sources")
	return cmd
}

func runBackup(ctx context.Context, g *globals, f backupFlags, paths []string) error {
	rep := g.reporter()
	policy, err := snapshot.ParsePolicy(f.snapshot)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	lf := livefile.DefaultConfig()
	if lf.Strategy, err = livefile.ParseStrategy(f.openFiles); err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	lf.Retries = f.retries
	lf.StagingDir = f.stagingDir
	if lf.StagingDir == "" {
		lf.StagingDir = filepath.Join(run.CacheDir(), "staging")
	}
	if lf.Strategy == livefile.StrategyStage {
		if err := livefile.CheckStagingDir(lf.StagingDir, paths); err != nil {
			return &exitError{code: exitUsage, err: err}
		}
		if _, err := livefile.PurgeStaging(lf.StagingDir); err != nil {
			rep.Warn(lf.StagingDir, "staging", "leftovers of an earlier run not removed: "+err.Error())
		}
	}
	// plan first: a required snapshot that cannot be taken fails before
	// anything is written, the repository included
	plan, err := run.PlanSnapshots(paths, policy, "")
	if err != nil {
		return err
	}
	r, created, err := run.OpenOrCreate(ctx, g.access)
	if err != nil {
		return err
	}
	if created != nil {
		announceCreated(rep, r, created)
	}
	warnIndexProblems(rep, r)
	progress := &archiver.Progress{}
	stop := rep.Track("backup", func() report.Status {
		return report.Status{
			FilesDone: progress.FilesDone.Load(), FilesTotal: progress.FilesTotal.Load(),
			BytesDone: progress.BytesDone.Load(), BytesTotal: progress.BytesTotal.Load(),
			ScanDone: progress.ScanDone.Load(), Current: progress.Current(),
		}
	})
	res, err := run.Backup(ctx, r, run.BackupOptions{
		Paths: paths, Excludes: f.excludes, Tags: f.tags, Host: f.host, Force: f.force,
		Snapshot: plan, OpenFiles: lf, LogDir: filepath.Join(run.CacheDir(), r.Config().ID, "logs"),
		Progress: progress, Scan: rep.Mode != report.Quiet,
		OnProblem: func(p archiver.Problem) {
			msg := p.Outcome.String()
			if p.Reason != "" {
				msg += " (" + p.Reason + ")"
			}
			if p.Error != "" {
				msg += ": " + p.Error
			}
			if p.Holder != "" {
				msg += " [held by " + p.Holder + "]"
			}
			rep.Warn(p.Path, p.Outcome.String(), msg)
		},
	})
	stop()
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		rep.Warn("", "snapshot", w)
	}
	printBackupSummary(rep, r.Backend().Location(), res)
	if code := res.ExitCode(); code != exitOK {
		return &exitError{code: code}
	}
	return nil
}

func printBackupSummary(rep *report.Reporter, location string, res *run.BackupResult) {
	s := res.Snapshot
	if rep.Mode == report.JSON {
		problems := res.Problems
		if problems == nil {
			problems = []archiver.Problem{}
		}
		rep.Event(map[string]any{
			"type": "summary", "snapshot_id": s.ID.String(), "repository": location,
			"time": s.Time, "paths": s.Paths, "tags": s.Tags, "stats": s.Stats,
			"outcomes": s.Outcomes, "partial": s.Partial, "consistency": s.Consistency,
			"sources": s.Sources, "problems": problems, "exit_code": res.ExitCode(),
			"parent": s.Parent, "notes": res.Notes, "warnings": res.Warnings, "file_log": res.FileLog,
		})
		return
	}
	st := s.Stats
	unchanged := st.Files - st.FilesRead
	rep.Printf("snapshot %s saved in %s\n", s.ID.Short(), location)
	rep.Printf("  paths:  %s\n", strings.Join(s.Paths, ", "))
	rep.Printf("  files:  %d (%d read, %d unchanged), %d directories, %d other\n", st.Files, st.FilesRead, unchanged, st.Dirs, st.Others)
	rep.Printf("  data:   %s in files, %s read, %s new (%s stored)\n",
		report.Bytes(st.Bytes), report.Bytes(st.BytesRead), report.Bytes(st.DataAdded), report.Bytes(st.StoredAdded))
	rate := ""
	if st.DurationSecs > 0 {
		rate = fmt.Sprintf(" (%s/s read)", report.Bytes(int64(float64(st.BytesRead)/st.DurationSecs)))
	}
	rep.Printf("  time:   %.1fs%s\n", st.DurationSecs, rate)
	for _, src := range s.Sources {
		how := fmt.Sprintf("read live (%s consistency)", src.Consistency)
		if src.Provider != "none" {
			how = fmt.Sprintf("from a %s snapshot (%s consistency), created in %.1f ms", src.Provider, src.Consistency, src.FreezeMs)
		}
		rep.Printf("  source: %s %s\n", src.Path, how)
	}
	if !s.Partial {
		rep.Printf("  every file was stored whole\n")
		return
	}
	counts := s.OutcomeCounts()
	rep.Printf("  %s\n", run.OutcomeSentence(counts, res.Problems))
	if res.FileLog != "" {
		rep.Printf("  file log: %s\n", res.FileLog)
	}
	byOutcome := map[outcome.Outcome][]archiver.Problem{}
	for _, p := range res.Problems {
		byOutcome[p.Outcome] = append(byOutcome[p.Outcome], p)
	}
	outs := make([]outcome.Outcome, 0, len(byOutcome))
	for o := range byOutcome {
		outs = append(outs, o)
	}
	sort.Slice(outs, func(i, j int) bool { return outs[i] > outs[j] })
	for _, o := range outs {
		ps := byOutcome[o]
		rep.Printf("  %s:\n", o)
		for i, p := range ps {
			if i == 5 {
				rep.Printf("    … and %d more (stillpoint ls %s --outcome %s)\n", len(ps)-5, s.ID.Short(), o)
				break
			}
			detail := p.Reason
			if p.Holder != "" {
				detail += ", held by " + p.Holder
			}
			rep.Printf("    %s (%s)\n", p.Path, detail)
		}
	}
}
