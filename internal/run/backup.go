// Package run carries out one command's flow over the lower packages: for
// a backup, lock, choose the parent, archive, flush, write the manifest.
// The CLI only parses flags and prints what this returns.
package run

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/filter"
	"github.com/stillpoint-backup/stillpoint/internal/hold"
	"github.com/stillpoint-backup/stillpoint/internal/livefile"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/quiesce"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/retention"
	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
	"github.com/stillpoint-backup/stillpoint/internal/view"
	"github.com/stillpoint-backup/stillpoint/internal/vss"
)

// Version is the program's version, recorded in every snapshot.
var Version = "0.1.0-dev"

// Source is one path to back up with its own policies.
type Source struct {
	Path      string
	Snapshot  snapshot.Policy
	OpenFiles livefile.Config
	Excludes  []string // patterns that apply below this source only
}

// BackupOptions describe one backup.
type BackupOptions struct {
	Sources  []Source
	Excludes []string // patterns that apply everywhere
	Tags     []string
	Host     string
	RunID    string
	// Compression overrides the repository's level for this run's new
	// blobs (off, fastest, default, better); "" keeps it.
	Compression string
	// Plan is the snapshot plan made by PlanSnapshots before anything was
	// written; nil reads every source live.
	Plan *snapshot.Plan
	// VSS tunes the Windows shadow copy set (the job's vss: keys); nil
	// keeps the requester's defaults.
	VSS *vss.Options
	// Quiescing: hooks around the run, writers frozen around the snapshot
	// set, and a wait for a quiet period before it.
	Hooks      quiesce.Hooks
	Writers    []quiesce.Writer
	Inactivity time.Duration
	MaxWait    time.Duration
	// FailWithoutQuiet fails the run when MaxWait passes without a quiet
	// period (by default the snapshot is taken anyway, crash-consistent).
	FailWithoutQuiet bool
	// Hold stops the processes writing to a volume snapshot's filesystems
	// for the moment of the snapshot.
	Hold   hold.Options
	OnHook func(quiesce.HookResult)

	Progress  *archiver.Progress
	OnProblem func(archiver.Problem)
	Scan      bool
	// Force reads every file even when the parent says it is unchanged.
	Force bool
	// LogDir receives the run's file log (one line per file not whole); "" for none.
	LogDir string
	// Time is the snapshot's time (backup --time); zero means when the run
	// started. It is stored with its zone's UTC offset, as restic does, so
	// that retention periods are the user's days, not UTC's.
	Time time.Time
	// Retention, when set, is applied to the snapshots of this backup's
	// host and paths once its snapshot is saved (a job's retention:); its
	// Policy and GroupBy count, its Filter is replaced by host and paths.
	Retention *retention.Options
}

// BackupResult is what a backup produced.
type BackupResult struct {
	Snapshot *repo.Snapshot
	Parent   *repo.Snapshot
	Problems []archiver.Problem
	// FilesUnchanged counts the files taken from the parent unread (see
	// archiver.Result): Snapshot.Stats.Files less FilesRead less it were
	// failed or skipped.
	FilesUnchanged int64
	// Notes and Warnings about how the data was read (snapshot fallbacks,
	// nested subvolumes, open-file detection limits, optional hooks).
	Notes    []string
	Warnings []string
	FileLog  string
	Hooks    []quiesce.HookResult
	// Retention is what BackupOptions.Retention removed and kept.
	Retention *ForgetResult
}

// ExitCode is 0 when every file is whole, 3 when some were not read whole.
func (b *BackupResult) ExitCode() int {
	if b.Snapshot != nil && b.Snapshot.Partial {
		return 3
	}
	return 0
}

// Backup runs one backup into r, through the hook points: before-backup,
// before-snapshot, the inactivity wait, writers' freeze, the snapshot set,
// thaw, after-snapshot, the backup, release, after-backup, on-error. The
// snapshot set is released and the writers thawed however the run ends.
func Backup(ctx context.Context, r *repo.Repository, o BackupOptions) (res *BackupResult, err error) {
	start := time.Now()
	if len(o.Sources) == 0 {
		return nil, errors.New("no paths to back up")
	}
	paths := make([]string, len(o.Sources))
	scoped := filter.Scoped{}
	native := pathmap.Native
	for i, s := range o.Sources {
		// C:\data on Windows (c:/data, a relative path, \\?\C:\data alike)
		abs, err := pathmap.Abs(s.Path)
		if err != nil {
			return nil, err
		}
		o.Sources[i].Path = abs
		paths[i] = o.Sources[i].Path
		set, err := filter.CompileAllFor(native, s.Excludes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Path, err)
		}
		if len(set) > 0 {
			root, err := native.ToRepo(abs)
			if err != nil {
				return nil, err
			}
			scoped = append(scoped, filter.ScopedSet{Root: root, Set: set, Rules: native})
		}
	}
	global, err := filter.CompileAllFor(native, o.Excludes)
	if err != nil {
		return nil, err
	}
	if o.Compression != "" {
		if err := r.SetCompression(o.Compression); err != nil {
			return nil, err
		}
	}
	scoped = append(scoped, filter.ScopedSet{Root: "/", Set: global, Rules: native})
	sortedPaths := append([]string(nil), paths...)
	sort.Strings(sortedPaths)
	sortedPaths = slices.Compact(sortedPaths)
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	if o.RunID == "" {
		o.RunID = NewRunID()
	}
	// a backup of nothing stops before it locks, runs hooks or snaps
	if err := archiver.CheckRoots(&view.Live{}, sortedPaths); err != nil {
		return nil, err
	}
	// Lock reads the prune marks and the index again once the lock is
	// visible: what this run deduplicates against, and the parent it picks
	// below, come from a view that starts after the lock (docs/format.md,
	// Prune). The snapshot is written before the deferred unlock.
	lock, err := r.Lock(ctx, false, "backup")
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()

	var parent *repo.Snapshot
	if !o.Force {
		parent, err = findParent(ctx, r, o.Host, sortedPaths)
		if err != nil {
			return nil, err
		}
	}
	res = &BackupResult{Parent: parent}

	open, err := livefile.ScanOpenForWrite()
	if err != nil {
		return nil, fmt.Errorf("scan for open files: %w", err)
	}
	if note := open.Note(); note != "" {
		res.Notes = append(res.Notes, note)
	}
	if warning, note := livefile.EnableBackupPrivileges(); warning != "" || note != "" {
		res.Warnings = appendNonEmpty(res.Warnings, warning)
		res.Notes = appendNonEmpty(res.Notes, note)
	}
	readers := &sourceReaders{}
	defer readers.close()
	for _, s := range o.Sources {
		cfg := s.OpenFiles
		cfg.Open = open
		rd, err := livefile.NewReader(cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Path, err)
		}
		readers.add(repoPath(s.Path), rd)
	}
	// writers' consistent copies go below the first source's staging
	// directory (outside every source), and are removed with the run
	stagingBase := o.Sources[0].OpenFiles.StagingDir
	if stagingBase == "" {
		stagingBase = os.TempDir()
	}
	writerStaging := filepath.Join(stagingBase, "writers-"+o.RunID)
	defer os.RemoveAll(writerStaging)

	var (
		set      *snapshot.Set
		subs     = map[string]string{}
		qinfo    = &repo.QuiesceInfo{}
		sources  = liveSources(sortedPaths)
		snapped  = func(string) bool { return false }
		saved    *repo.Snapshot
		problems []archiver.Problem
	)
	phases := quiesce.Phases{
		Snapshot: func(ctx context.Context) ([]string, error) {
			if o.Plan != nil {
				// old snapshots are deleted and dirty pages written back
				// before the writers freeze, not while they wait
				o.Plan.RemoveLeftovers()
				if err := o.Plan.Flush(); err != nil {
					res.Warnings = append(res.Warnings, "flushing before the snapshot: "+err.Error())
				}
			}
			var held *hold.Report
			// takeSet freezes the writers, creates the set with the writers
			// of its filesystems held, and thaws; release undoes it, for a
			// set that a write during its making spoilt
			takeSet := func(ctx context.Context, ready func()) (func(), error) {
				info := quiesce.FreezeInfo{RunID: o.RunID, Covered: coverage(o.Plan), StagingDir: writerStaging}
				frozen, err := freezeAll(ctx, o.Writers, info)
				if err != nil {
					return nil, err
				}
				ready()
				var serr error
				if o.Plan != nil {
					set, held, serr = CreateHeld(ctx, o.Plan, o.Hold)
					qinfo.Hold = holdInfo(held)
				}
				qinfo.Writers = thawAll(frozen)
				clear(subs)
				for _, fw := range frozen {
					if fw.frozen != nil {
						// keyed by the archiver's repository paths (on
						// Windows /C/db/x.sqlite for C:\db\x.sqlite)
						for orig, cp := range fw.frozen.Substitutes {
							subs[repoPath(orig)] = cp
						}
					}
				}
				return func() {
					if err := set.Release(); err != nil {
						res.Warnings = append(res.Warnings, "releasing a snapshot taken again: "+err.Error())
					}
					set = nil
				}, serr
			}
			if o.Inactivity > 0 {
				ir, err := quiesce.WaitQuiet(ctx, sortedPaths, o.Inactivity, o.MaxWait,
					quiesce.InactivityOptions{Snap: takeSet, SnapOnlyWhenQuiet: o.FailWithoutQuiet})
				if err != nil {
					return nil, fmt.Errorf("inactivity wait: %w", err)
				}
				qinfo.WaitedMs = float64(ir.Waited.Microseconds()) / 1000
				qinfo.QuietForMs = float64(ir.QuietFor.Microseconds()) / 1000
				qinfo.Quiet, qinfo.WaitMessage, qinfo.Resnapped = ir.Quiet, ir.Message, ir.Resnapped
				if ir.Fallback != "" {
					res.Notes = append(res.Notes, ir.Fallback)
				}
				if !ir.Quiet {
					if o.FailWithoutQuiet {
						return nil, errors.New(ir.Message)
					}
					res.Warnings = append(res.Warnings, ir.Message)
				}
			} else if _, err := takeSet(ctx, func() {}); err != nil {
				return nil, err
			}
			if err := thawErrors(qinfo.Writers); err != nil {
				// the snapshot is good; the application may still be paused
				res.Warnings = append(res.Warnings, err.Error())
			}
			if set == nil {
				return nil, nil
			}
			sources, snapped = setSources(set, held.PointInTime())
			if held != nil && held.Message != "" {
				res.Warnings = append(res.Warnings, "hold: "+held.Message+"; the btrfs snapshot is crash-consistent")
			}
			res.Notes = append(res.Notes, set.Notes...)
			res.Warnings = append(res.Warnings, set.Warnings...)
			qinfo.VSSWriters = vssWriters(set)
			return set.Locations(), nil
		},
		Backup: func(ctx context.Context, _ []string) (quiesce.Outcome, error) {
			var v view.View = &view.Live{}
			if set != nil {
				v = set.View()
			}
			sv := &substituteView{View: v, subs: subs}
			reader := &fileReader{readers: readers, snapped: func(p string) bool { return snapped(p) || sv.substituted(p) }}
			opts := archiver.Options{
				Excludes: scoped, Reader: reader, Progress: o.Progress, OnProblem: o.OnProblem, Scan: o.Scan,
				FromSnapshot: func(f view.File) bool { return snapshot.OriginOf(f) != snapshot.Live },
			}
			if parent != nil {
				opts.Parent = parent.Tree
			}
			ares, err := archiver.New(r, sv, opts).Run(ctx, sortedPaths)
			if err != nil {
				// what was stored is durable and indexed for the next run to reuse
				_ = r.Flush(context.Background())
				return quiesce.Outcome{}, err
			}
			if err := r.Flush(ctx); err != nil {
				return quiesce.Outcome{}, err
			}
			s := &repo.Snapshot{
				Time: snapshotTime(start, o.Time), Host: o.Host, Paths: sortedPaths, Tags: o.Tags, Excludes: o.Excludes,
				Tree: ares.Tree, Program: "stillpoint " + Version, Stats: ares.Stats,
				Outcomes: map[string]int64{}, Sources: sources,
			}
			if u, err := user.Current(); err == nil {
				s.User = u.Username
			}
			if parent != nil {
				id := parent.ID
				s.Parent = &id
			}
			for oc, n := range ares.Outcomes {
				s.Outcomes[oc.String()] = n
			}
			s.Partial = ares.Outcomes.NotWhole() > 0
			s.Consistency = weakest(sources)
			if o.Inactivity > 0 || len(qinfo.Writers) > 0 || len(res.Hooks) > 0 || qinfo.Hold != nil || len(qinfo.VSSWriters) > 0 {
				s.Quiesce = qinfo
			}
			ws := r.Stats()
			s.Stats.DataAdded = ws.DataAdded.Load()
			s.Stats.StoredAdded = ws.StoredAdded.Load()
			s.Stats.BlobsAdded = ws.Blobs.Load()
			s.Stats.DurationSecs = time.Since(start).Seconds()
			if _, err := r.SaveSnapshot(ctx, s); err != nil {
				return quiesce.Outcome{}, err
			}
			saved, problems = s, ares.Problems
			res.FilesUnchanged = ares.FilesUnchanged
			return outcomeFor(s), nil
		},
		Release: func(context.Context) error {
			if set == nil {
				return nil
			}
			if err := set.Release(); err != nil {
				return fmt.Errorf("release snapshot set: %w (stillpoint doctor --cleanup removes what is left)", err)
			}
			return nil
		},
	}
	runner := &quiesce.HookRunner{Hooks: o.Hooks, Log: o.OnHook}
	seq, err := runner.Sequence(ctx, quiesce.HookEnv{RunID: o.RunID, Sources: sortedPaths}, phases)
	if seq != nil {
		res.Hooks = seq.Hooks
		res.Warnings = append(res.Warnings, seq.Warnings()...)
	}
	if err != nil {
		if saved != nil {
			// the snapshot is saved; only a cleanup step failed after it
			res.Snapshot, res.Problems = saved, problems
		}
		return res, err
	}
	res.Snapshot, res.Problems = saved, problems
	if o.LogDir != "" {
		path, err := writeFileLog(o.LogDir, saved, problems)
		if err != nil {
			res.Warnings = append(res.Warnings, "file log not written: "+err.Error())
		}
		res.FileLog = path
	}
	if o.Retention != nil {
		if res.Retention, err = ApplyRetention(ctx, r, saved, *o.Retention); err != nil {
			return res, fmt.Errorf("retention: %w", err)
		}
	}
	return res, nil
}

// outcomeFor turns a manifest's counts into what hooks are told.
func outcomeFor(s *repo.Snapshot) quiesce.Outcome {
	c := s.OutcomeCounts()
	code := 0
	if s.Partial {
		code = 3
	}
	return quiesce.Outcome{
		FilesOK: int(c[outcome.OK]), FilesSnapshot: int(c[outcome.OKSnapshot]), FilesChanged: int(c[outcome.Changed]),
		FilesSkipped: int(c[outcome.SkippedOpen]), FilesFailed: int(c[outcome.Failed] + c[outcome.Stale]),
		SnapshotID: s.ID.String(), ExitCode: code,
	}
}

// NewRunID returns a short random id for a run's labels and hooks.
func NewRunID() string { return repo.NewRandomID().String()[:12] }

// weakest is the weakest consistency level over the sources.
func weakest(sources []repo.SourceInfo) string {
	levels := make([]snapshot.Consistency, len(sources))
	for i, s := range sources {
		levels[i] = snapshot.Consistency(s.Consistency)
	}
	return string(snapshot.Weakest(levels...))
}

// findParent picks the newest snapshot of the same host and paths.
func findParent(ctx context.Context, r *repo.Repository, host string, paths []string) (*repo.Snapshot, error) {
	snaps, _, err := r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	for i := len(snaps) - 1; i >= 0; i-- {
		s := snaps[i]
		if s.Host == host && pathmap.SamePaths(s.Paths, paths) {
			return s, nil
		}
	}
	return nil, nil
}

// OutcomeSentence says in words what happened to the files that are not
// whole, e.g. "2 files backed up with potential integrity problems; unable
// to back up 3 files (locked by postgres[1234])".
func OutcomeSentence(counts outcome.Counts, problems []archiver.Problem) string {
	var parts []string
	if n := counts[outcome.Changed]; n > 0 {
		parts = append(parts, fmt.Sprintf("%s backed up with potential integrity problems (changed while read)", files(n)))
	}
	if n := counts[outcome.SkippedOpen]; n > 0 {
		parts = append(parts, fmt.Sprintf("%s skipped because they were open or locked", files(n)))
	}
	var missing []string
	for _, p := range problems {
		if p.Outcome == outcome.Failed && p.Reason == outcome.ReasonMissing {
			missing = append(missing, p.Path)
		}
	}
	if len(missing) > 0 {
		parts = append(parts, fmt.Sprintf("%s to back up did not exist (%s)", paths(len(missing)), strings.Join(missing, ", ")))
	}
	if n := counts[outcome.Failed] - int64(len(missing)); n > 0 {
		holders := map[string]bool{}
		var hs []string
		for _, p := range problems {
			if p.Outcome == outcome.Failed && p.Holder != "" && !holders[p.Holder] {
				holders[p.Holder] = true
				hs = append(hs, p.Holder)
			}
		}
		s := fmt.Sprintf("unable to back up %s", files(n))
		if len(hs) > 0 {
			if len(hs) > 3 {
				hs = append(hs[:3], "…")
			}
			s += fmt.Sprintf(" (locked by %s)", strings.Join(hs, ", "))
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func paths(n int) string {
	if n == 1 {
		return "1 path"
	}
	return fmt.Sprintf("%d paths", n)
}

func files(n int64) string {
	if n == 1 {
		return "1 file"
	}
	return fmt.Sprintf("%d files", n)
}

func appendNonEmpty(list []string, s string) []string {
	if s == "" {
		return list
	}
	return append(list, s)
}
