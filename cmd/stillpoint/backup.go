package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/backend/metered"
	"github.com/stillpoint-backup/stillpoint/internal/backend/s3"
	"github.com/stillpoint-backup/stillpoint/internal/filter"
	"github.com/stillpoint-backup/stillpoint/internal/hold"
	"github.com/stillpoint-backup/stillpoint/internal/job"
	"github.com/stillpoint-backup/stillpoint/internal/livefile"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/quiesce"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/report"
	"github.com/stillpoint-backup/stillpoint/internal/run"
	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
	"github.com/stillpoint-backup/stillpoint/internal/view"
	"github.com/stillpoint-backup/stillpoint/internal/vss"
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
	jobFile    string
	compress   string
	hold       string
	holdFor    time.Duration
	holdExcl   []string
	timeStamp  string
	vssTimeout time.Duration
	vssPhase   time.Duration

	// which --hold flags were given: each overrides its job file key
	holdSet, holdForSet, holdExclSet bool
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
		Example: `  stillpoint backup ~/Documents ~/Projects --exclude '*.tmp' --exclude cache/
  stillpoint backup --job /etc/stillpoint/app.yaml      # sources, policies, hooks, writers of a job file
  stillpoint backup /srv/app --snapshot required --tag nightly --json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if f.jobFile == "" && len(args) == 0 {
				return &exitError{code: exitUsage, err: fmt.Errorf("name the paths to back up, or a job file with --job")}
			}
			if f.jobFile != "" && len(args) > 0 {
				return &exitError{code: exitUsage, err: fmt.Errorf("with --job the paths come from the job file; remove %s", strings.Join(args, " "))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			f.holdSet, f.holdForSet, f.holdExclSet = fl.Changed("hold"), fl.Changed("hold-timeout"), fl.Changed("hold-exclude")
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
	fl.StringVar(&f.compress, "compression", "", "zstd level for this run's new data: off, fastest, default, better (default: the job's, else the repository's)")
	fl.StringVar(&f.jobFile, "job", "", "run the backup a job file describes: sources with policies, hooks, writers, the inactivity wait (docs/job.md)")
	fl.StringVar(&f.hold, "hold", "writers", "for a btrfs snapshot: writers (stop the processes writing to the filesystem for its milliseconds, so it is one point in time) or off (crash-consistent)")
	fl.DurationVar(&f.holdFor, "hold-timeout", hold.DefaultTimeout, "longest a process is held; past it the snapshot is taken crash-consistent")
	fl.DurationVar(&f.vssTimeout, "vss-timeout", 0, "Windows: longest the shadow copy set may take with its retries (0: the job's vss.timeout, or 10m)")
	fl.DurationVar(&f.vssPhase, "vss-phase-timeout", 0, "Windows: longest one VSS step may take, e.g. the writers' PrepareForBackup (0: the job's vss.phase-timeout, or 3m)")
	fl.StringArrayVar(&f.holdExcl, "hold-exclude", nil, "never hold this process (command name or executable path; repeatable)")
	fl.StringVar(&f.timeStamp, "time", "", "the snapshot's `time`, \"2006-01-02 15:04:05\" in the local time zone (stored with its UTC offset, as restic's --time; default: now)")
	fl.StringVar(&f.stagingDir, "staging-dir", "", "where --open-files stage copies files (default "+filepath.Join(run.CacheDir(), "staging")+"); must be outside the sources")
	return cmd
}

// backupOptions builds the run's options from the flags or the job file.
func backupOptions(g *globals, f backupFlags, paths []string, rep *report.Reporter) (run.BackupOptions, error) {
	staging := f.stagingDir
	if staging == "" {
		staging = filepath.Join(run.CacheDir(), "staging")
	}
	if f.jobFile != "" {
		j, warnings, err := job.Load(f.jobFile)
		if err != nil {
			return run.BackupOptions{}, &exitError{code: exitUsage, err: err}
		}
		for _, w := range warnings {
			rep.Warn("", "job", w.String())
		}
		if g.access.Repository == "" && j.Repository != "" {
			g.access.Repository = j.Repository
		}
		g.access.UseJobS3(j.S3)
		o, err := run.FromJob(j, staging)
		if err != nil {
			return o, err
		}
		if o.Hold, err = holdOptions(f, o.Hold); err != nil {
			return o, err
		}
		return o, vssFlags(f, &o)
	}
	policy, err := snapshot.ParsePolicy(f.snapshot)
	if err != nil {
		return run.BackupOptions{}, &exitError{code: exitUsage, err: err}
	}
	lf := livefile.DefaultConfig()
	if lf.Strategy, err = livefile.ParseStrategy(f.openFiles); err != nil {
		return run.BackupOptions{}, &exitError{code: exitUsage, err: err}
	}
	lf.Retries, lf.StagingDir = f.retries, staging
	o := run.BackupOptions{Excludes: f.excludes, Tags: f.tags, Host: f.host}
	if o.Hold, err = holdOptions(f, hold.Options{Enabled: true, Timeout: hold.DefaultTimeout}); err != nil {
		return o, err
	}
	for _, p := range paths {
		o.Sources = append(o.Sources, run.Source{Path: p, Snapshot: policy, OpenFiles: lf})
	}
	return o, vssFlags(f, &o)
}

// vssSentence sums up the VSS writers of the set, naming the failed ones.
func vssSentence(ws []repo.VSSWriterInfo) string {
	var stable int
	var failed []string
	for _, w := range ws {
		switch {
		case w.Failed:
			f := fmt.Sprintf("%s (%s", w.Name, w.State)
			if w.Failure != "" {
				f += ", " + w.Failure
			}
			if w.FailedAt != "" {
				f += ", after " + w.FailedAt
			}
			failed = append(failed, f+")")
		case !w.Excluded:
			stable++
		}
	}
	msg := fmt.Sprintf("%d writers took part", stable)
	if len(failed) > 0 {
		msg += fmt.Sprintf("; %d failed, so what they cover is crash-consistent: %s", len(failed), strings.Join(failed, "; "))
	}
	return msg
}

// vssFlags applies --vss-timeout and --vss-phase-timeout over the job's
// vss: keys or the requester's defaults.
func vssFlags(f backupFlags, o *run.BackupOptions) error {
	if f.vssTimeout < 0 || f.vssPhase < 0 {
		return &exitError{code: exitUsage, err: errors.New("--vss-timeout and --vss-phase-timeout take a duration above 0")}
	}
	if o.VSS == nil {
		d := vss.DefaultOptions()
		o.VSS = &d
	}
	if f.vssTimeout > 0 {
		o.VSS.Timeout = f.vssTimeout
	}
	if f.vssPhase > 0 {
		o.VSS.PhaseTimeout = f.vssPhase
	}
	total, phase := cmp.Or(o.VSS.Timeout, vss.DefaultTimeout), cmp.Or(o.VSS.PhaseTimeout, vss.DefaultPhaseTimeout)
	if phase > total {
		return &exitError{code: exitUsage, err: fmt.Errorf("the VSS phase timeout (%s) is longer than the whole set's (%s)", phase, total)}
	}
	return nil
}

// holdOptions applies the --hold flags that were given over base (the
// job file's keys, or the defaults).
func holdOptions(f backupFlags, base hold.Options) (hold.Options, error) {
	o := base
	if f.holdSet {
		if f.hold != "writers" && f.hold != "off" {
			return o, &exitError{code: exitUsage, err: fmt.Errorf("--hold %q: use writers or off", f.hold)}
		}
		o.Enabled = f.hold == "writers"
	}
	if f.holdForSet {
		if f.holdFor <= 0 || f.holdFor > hold.MaxTimeout {
			return o, &exitError{code: exitUsage, err: fmt.Errorf("--hold-timeout %s: give a duration above 0 and at most %s", f.holdFor, hold.MaxTimeout)}
		}
		o.Timeout = f.holdFor
	}
	if f.holdExclSet {
		o.Exclude = f.holdExcl
	}
	return o, nil
}

func runBackup(ctx context.Context, g *globals, f backupFlags, paths []string) error {
	rep := g.reporter()
	o, err := checkedBackupOptions(g, f, paths, rep)
	if err != nil {
		return err
	}
	// a backup of nothing stops before it creates a repository, runs hooks
	// or takes snapshots
	if err := archiver.CheckRoots(&view.Live{}, sourcePaths(o.Sources)); err != nil {
		return err
	}
	// plan first: a required snapshot that cannot be taken fails before
	// anything is written, the repository included
	o.RunID = run.NewRunID()
	if o.Plan, err = run.PlanSnapshots(o.Sources, o.RunID, o.VSS); err != nil {
		return err
	}
	r, err := openForBackup(ctx, g, rep)
	if err != nil {
		return err
	}
	stop := reportRun(rep, r, &o)
	res, err := run.Backup(ctx, r, o)
	stop()
	return finishBackup(g, rep, r, res, err, nil)
}

// checkedBackupOptions are the run's options from the flags or the job
// file, each checked: a wrong one is a usage error before anything runs.
// The staging directories are checked and emptied of an earlier run's
// leftovers.
func checkedBackupOptions(g *globals, f backupFlags, paths []string, rep *report.Reporter) (run.BackupOptions, error) {
	if f.jobFile == "" && (f.retries < 0 || f.retries > livefile.MaxRetries) {
		return run.BackupOptions{}, &exitError{code: exitUsage, err: fmt.Errorf("--retries %d: use 0 to %d", f.retries, livefile.MaxRetries)}
	}
	if _, err := filter.CompileAllFor(pathmap.Native, f.excludes); err != nil {
		return run.BackupOptions{}, &exitError{code: exitUsage, err: fmt.Errorf("--exclude: %w", err)}
	}
	o, err := backupOptions(g, f, paths, rep)
	if err != nil {
		return o, err
	}
	if f.timeStamp != "" {
		if o.Time, err = time.ParseInLocation(time.DateTime, f.timeStamp, time.Local); err != nil {
			return o, &exitError{code: exitUsage, err: fmt.Errorf("--time %q: write the local time as \"2006-01-02 15:04:05\"", f.timeStamp)}
		}
	}
	if len(f.tags) > 0 && f.jobFile != "" { // without a job, backupOptions took them
		o.Tags = append(o.Tags, f.tags...)
	}
	o.Force = f.force
	if f.compress != "" {
		o.Compression = f.compress
	}
	if o.Compression != "" && !slices.Contains(job.CompressionLevels, o.Compression) {
		return o, &exitError{code: exitUsage, err: fmt.Errorf("--compression %q: use one of %s", o.Compression, strings.Join(job.CompressionLevels, ", "))}
	}
	all := sourcePaths(o.Sources)
	for _, s := range o.Sources {
		if s.OpenFiles.Strategy != livefile.StrategyStage {
			continue
		}
		if err := livefile.CheckStagingDir(s.OpenFiles.StagingDir, all); err != nil {
			return o, &exitError{code: exitUsage, err: err}
		}
		if _, err := livefile.PurgeStaging(s.OpenFiles.StagingDir); err != nil {
			rep.Warn(s.OpenFiles.StagingDir, "staging", "leftovers of an earlier run not removed: "+err.Error())
		}
	}
	return o, nil
}

func sourcePaths(sources []run.Source) []string {
	var out []string
	for _, s := range sources {
		out = append(out, s.Path)
	}
	return out
}

// openForBackup opens the repository, creating it on the first backup.
func openForBackup(ctx context.Context, g *globals, rep *report.Reporter) (*repo.Repository, error) {
	r, created, err := run.OpenOrCreate(ctx, g.access)
	if err != nil {
		return nil, err
	}
	if created != nil {
		announceCreated(rep, r, created)
	}
	warnIndexProblems(rep, r)
	return r, nil
}

// reportRun makes o report to rep as the run goes: progress, the files
// not whole, the hooks, the file log. The function it returns stops the
// progress display.
func reportRun(rep *report.Reporter, r *repo.Repository, o *run.BackupOptions) (stop func()) {
	progress := &archiver.Progress{}
	o.Progress, o.Scan = progress, rep.Mode != report.Quiet
	o.LogDir = filepath.Join(run.CacheDir(), r.Config().ID, "logs")
	o.OnProblem = func(p archiver.Problem) {
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
	}
	o.OnHook = func(h quiesce.HookResult) {
		rep.Event(map[string]any{"type": "hook", "point": h.Point, "command": h.Command, "exit_code": h.ExitCode,
			"duration_secs": h.Duration.Seconds(), "timed_out": h.TimedOut, "error": h.Error, "essential": h.Essential})
		if !h.OK() && rep.Mode != report.JSON {
			rep.Warn(string(h.Point), "hook", fmt.Sprintf("hook %q failed: %s", h.Command, h.Error))
		}
	}
	return rep.Track("backup", func() report.Status {
		return report.Status{
			FilesDone: progress.FilesDone.Load(), FilesTotal: progress.FilesTotal.Load(),
			BytesDone: progress.BytesDone.Load(), BytesTotal: progress.BytesTotal.Load(),
			ScanDone: progress.ScanDone.Load(), Current: progress.Current(),
		}
	})
}

// finishBackup prints the summary of a backup that ended with res and err
// (retry, when set, says what it did to the job's retry queue) and returns
// the command's error with its exit code.
func finishBackup(g *globals, rep *report.Reporter, r *repo.Repository, res *run.BackupResult, err error, retry *retryReport) error {
	if err != nil {
		if res != nil && res.Snapshot != nil {
			printBackupSummary(rep, r.Backend().Location(), res, backupRequests(g, rep), retry)
			// not "nothing was recorded": say what failed after the snapshot
			return &exitError{code: exitFatal, err: fmt.Errorf("snapshot %s was saved, but then: %w", res.Snapshot.ID.Short(), err)}
		}
		return err
	}
	printBackupSummary(rep, r.Backend().Location(), res, backupRequests(g, rep), retry)
	if code := res.ExitCode(); code != exitOK {
		return &exitError{code: code}
	}
	return nil
}

// filesLine is the summary's count of files: those read, those unchanged
// since the parent, and those neither (failed or skipped, listed below it),
// which are not unchanged even though nothing was read of them.
func filesLine(st repo.Stats, unchanged int64) string {
	line := fmt.Sprintf("%d (%d read, %d unchanged", st.Files, st.FilesRead, unchanged)
	if notRead := st.Files - st.FilesRead - unchanged; notRead > 0 {
		line += fmt.Sprintf(", %d not read", notRead)
	}
	return line + fmt.Sprintf("), %d directories, %d other", st.Dirs, st.Others)
}

// backupRequests are the store's requests for the summary: always in
// --json, in words for a remote repository only (a local one's are file
// operations, which cost next to nothing).
func backupRequests(g *globals, rep *report.Reporter) *metered.Counts {
	if g.access.Meter == nil || rep.Mode != report.JSON && !s3.IsLocation(g.access.Location()) {
		return nil
	}
	c := g.access.Meter.Counts()
	return &c
}

func printBackupSummary(rep *report.Reporter, location string, res *run.BackupResult, requests *metered.Counts, retry *retryReport) {
	s := res.Snapshot
	if rep.Mode == report.JSON {
		problems := res.Problems
		if problems == nil {
			problems = []archiver.Problem{}
		}
		sum := map[string]any{
			"type": "summary", "snapshot_id": s.ID.String(), "repository": location,
			"time": s.Time, "paths": s.Paths, "tags": s.Tags, "stats": s.Stats,
			"outcomes": s.Outcomes, "partial": s.Partial, "consistency": s.Consistency,
			"sources": s.Sources, "problems": problems, "exit_code": res.ExitCode(),
			"parent": s.Parent, "notes": res.Notes, "warnings": res.Warnings, "file_log": res.FileLog,
			"quiesce": s.Quiesce, "retention": retentionJSON(res.Retention),
			"files_unchanged": res.FilesUnchanged, "requests": requests,
		}
		if of, ok := run.IsFollowUp(s); ok {
			sum["followup_of"] = of
		}
		if retry != nil {
			sum["retry"] = retry.json()
		}
		rep.Event(sum)
		return
	}
	st := s.Stats
	if of, ok := run.IsFollowUp(s); ok {
		rep.Printf("snapshot %s saved in %s (a follow-up of %s)\n", s.ID.Short(), location, of[:8])
	} else {
		rep.Printf("snapshot %s saved in %s\n", s.ID.Short(), location)
	}
	rep.Printf("  paths:  %s\n", strings.Join(s.Paths, ", "))
	rep.Printf("  files:  %s\n", filesLine(st, res.FilesUnchanged))
	rep.Printf("  data:   %s in files, %s read, %s new (%s stored)\n",
		report.Bytes(st.Bytes), report.Bytes(st.BytesRead), report.Bytes(st.DataAdded), report.Bytes(st.StoredAdded))
	rate := ""
	if st.DurationSecs > 0 {
		rate = fmt.Sprintf(" (%s/s read)", report.Bytes(int64(float64(st.BytesRead)/st.DurationSecs)))
	}
	rep.Printf("  time:   %.1fs%s\n", st.DurationSecs, rate)
	if requests != nil {
		rep.Printf("  store:  %s\n", requestsSentence(*requests))
	}
	if q := s.Quiesce; q != nil {
		if q.WaitMessage != "" || q.WaitedMs > 0 {
			msg := q.WaitMessage
			if msg == "" {
				msg = fmt.Sprintf("quiet for %.0f ms", q.QuietForMs)
			}
			rep.Printf("  wait:   %s (waited %.1fs)\n", msg, q.WaitedMs/1000)
		}
		for _, w := range q.Writers {
			extra := ""
			if w.Error != "" {
				extra = ": " + w.Error
			}
			if !w.Frozen {
				rep.Printf("  writer: %s did not freeze its application: %s%s\n", w.Name, w.Reason, extra)
				continue
			}
			rep.Printf("  writer: %s held its application still for %.0f ms%s\n", w.Name, w.HeldMs, extra)
		}
		if h := q.Hold; h != nil {
			rep.Printf("  hold:   %s\n", holdSentence(h))
		}
		if len(q.VSSWriters) > 0 {
			rep.Printf("  vss:    %s\n", vssSentence(q.VSSWriters))
		}
	}
	for _, w := range res.Warnings {
		rep.Printf("  warning: %s\n", w)
	}
	if rt := res.Retention; rt != nil {
		kept := 0
		for _, g := range rt.Groups {
			kept += len(g.Keep)
		}
		var ids []string
		for _, r := range rt.Removed {
			ids = append(ids, r.ID.Short())
		}
		removed := "none removed"
		if len(ids) > 0 {
			removed = fmt.Sprintf("removed %d (%s)", len(ids), strings.Join(ids, ", "))
		}
		rep.Printf("  retention: kept %d snapshots of these paths, %s\n", kept, removed)
	}
	for _, src := range s.Sources {
		how := fmt.Sprintf("read live (%s consistency)", src.Consistency)
		if src.Provider != "none" {
			how = fmt.Sprintf("from a %s snapshot (%s consistency), created in %.1f ms", src.Provider, src.Consistency, src.FreezeMs)
		}
		rep.Printf("  source: %s %s\n", src.Path, how)
	}
	if retry != nil && retry.Sentence != "" {
		rep.Printf("  retry:  %s\n", retry.Sentence)
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
			rep.Printf("    %s%s\n", p.Path, problemDetail(p))
		}
	}
}

// problemDetail is " (reason, held by holder)", or "" when there is neither.
func problemDetail(p archiver.Problem) string {
	var parts []string
	if p.Reason != "" {
		parts = append(parts, p.Reason)
	}
	if p.Holder != "" {
		parts = append(parts, "held by "+p.Holder)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// holdSentence says whom the hold stopped, for how long, and whom not.
func holdSentence(h *repo.HoldInfo) string {
	var held []string
	for _, p := range h.Held {
		held = append(held, fmt.Sprintf("%s[%d]", p.Command, p.Pid))
	}
	s := "no process was writing to the snapshotted filesystems"
	if len(held) > 0 {
		s = fmt.Sprintf("stopped %s for %.1f ms", strings.Join(held, ", "), h.HeldMs)
	}
	for _, p := range h.Skipped {
		s += fmt.Sprintf("; not %s[%d]: %s", p.Command, p.Pid, p.Reason)
	}
	if h.Message != "" {
		s += "; " + h.Message
	}
	return s
}

// retentionJSON is what a job's retention kept (with the rules) and
// removed; nil without retention.
func retentionJSON(rt *run.ForgetResult) map[string]any {
	if rt == nil {
		return nil
	}
	kept, removed := []map[string]any{}, []string{}
	for _, g := range rt.Groups {
		for _, k := range g.Keep {
			kept = append(kept, map[string]any{"id": k.ID, "time": k.Time, "reasons": k.Reasons})
		}
	}
	for _, r := range rt.Removed {
		removed = append(removed, r.ID.String())
	}
	return map[string]any{"kept": kept, "removed": removed}
}
