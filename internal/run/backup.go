// Package run carries out one command's flow over the lower packages: for
// a backup, lock, choose the parent, archive, flush, write the manifest.
// The CLI only parses flags and prints what this returns.
package run

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
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
func Backup(ctx context.Context, r *repo.Repository, o BackupOptions) (*BackupResult, error) {
	b := newBackupRun(r, o)
	if err := b.plan(); err != nil {
		return nil, err
	}
	// a backup of nothing stops before it locks, runs hooks or snaps
	if err := archiver.CheckRoots(&view.Live{}, b.paths); err != nil {
		return nil, err
	}
	// the snapshot is written before the deferred unlock
	lock, err := r.Lock(ctx, false, "backup")
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	defer b.close()
	if err := b.open(ctx); err != nil {
		return nil, err
	}
	return b.sequence(ctx)
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
