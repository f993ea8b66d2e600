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
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/filter"
	"github.com/stillpoint-backup/stillpoint/internal/hold"
	"github.com/stillpoint-backup/stillpoint/internal/livefile"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/quiesce"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// backupRun is one run between its phases. Each phase reads what the
// earlier ones left in it and adds its own part; Backup and FollowUp
// compose them:
//
//	plan → open (lock, parent, readers) → quiesceAndSnap → archive →
//	manifest → release (always) → report
//
// quiesce.HookRunner.Sequence runs the middle ones between the hook points.
type backupRun struct {
	r     *repo.Repository
	o     BackupOptions
	start time.Time

	// plan
	paths  []string // the sources' paths, sorted, without duplicates
	scoped filter.Scoped

	// open
	parent        *repo.Snapshot
	readers       *sourceReaders
	writerStaging string

	// quiesceAndSnap
	set     *snapshot.Set
	subs    map[string]string // original repository path → a writer's copy
	qinfo   *repo.QuiesceInfo
	sources []repo.SourceInfo
	snapped func(string) bool

	// archive
	ares *archiver.Result
	// followUp, when set, restricts archive to these files and makes
	// manifest build the parent's snapshot with them replaced
	followUp *followUp

	// manifest
	saved *repo.Snapshot

	res *BackupResult
}

func newBackupRun(r *repo.Repository, o BackupOptions) *backupRun {
	return &backupRun{
		r: r, o: o, start: time.Now(), subs: map[string]string{}, qinfo: &repo.QuiesceInfo{},
		snapped: func(string) bool { return false }, res: &BackupResult{},
	}
}

// plan makes the sources' paths absolute, compiles the patterns and fills
// in the defaults. It touches neither the repository nor the sources.
func (b *backupRun) plan() error {
	o := &b.o
	if len(o.Sources) == 0 {
		return errors.New("no paths to back up")
	}
	paths := make([]string, len(o.Sources))
	native := pathmap.Native
	for i, s := range o.Sources {
		// C:\data on Windows (c:/data, a relative path, \\?\C:\data alike)
		abs, err := pathmap.Abs(s.Path)
		if err != nil {
			return err
		}
		o.Sources[i].Path = abs
		paths[i] = abs
		set, err := filter.CompileAllFor(native, s.Excludes)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Path, err)
		}
		if len(set) > 0 {
			root, err := native.ToRepo(abs)
			if err != nil {
				return err
			}
			b.scoped = append(b.scoped, filter.ScopedSet{Root: root, Set: set, Rules: native})
		}
	}
	global, err := filter.CompileAllFor(native, o.Excludes)
	if err != nil {
		return err
	}
	if o.Compression != "" {
		if err := b.r.SetCompression(o.Compression); err != nil {
			return err
		}
	}
	b.scoped = append(b.scoped, filter.ScopedSet{Root: "/", Set: global, Rules: native})
	sort.Strings(paths)
	b.paths = slices.Compact(paths)
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	if o.RunID == "" {
		o.RunID = NewRunID()
	}
	b.sources = liveSources(b.paths)
	return nil
}

// open picks the parent (unless given or forced off) and makes the
// open-file readers. It runs under the repository lock: what this run
// deduplicates against, and its parent, come from a view that starts after
// the lock (docs/format.md, Prune). close undoes it.
func (b *backupRun) open(ctx context.Context) error {
	if b.parent == nil && !b.o.Force {
		var err error
		if b.parent, err = findParent(ctx, b.r, b.o.Host, b.paths); err != nil {
			return err
		}
	}
	b.res.Parent = b.parent
	open, err := livefile.ScanOpenForWrite()
	if err != nil {
		return fmt.Errorf("scan for open files: %w", err)
	}
	if note := open.Note(); note != "" {
		b.res.Notes = append(b.res.Notes, note)
	}
	if warning, note := livefile.EnableBackupPrivileges(); warning != "" || note != "" {
		b.res.Warnings = appendNonEmpty(b.res.Warnings, warning)
		b.res.Notes = appendNonEmpty(b.res.Notes, note)
	}
	b.readers = &sourceReaders{}
	for _, s := range b.o.Sources {
		cfg := s.OpenFiles
		cfg.Open = open
		rd, err := livefile.NewReader(cfg)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Path, err)
		}
		b.readers.add(repoPath(s.Path), rd)
	}
	// writers' consistent copies go below the first source's staging
	// directory (outside every source), and are removed with the run
	stagingBase := b.o.Sources[0].OpenFiles.StagingDir
	if stagingBase == "" {
		stagingBase = os.TempDir()
	}
	b.writerStaging = filepath.Join(stagingBase, "writers-"+b.o.RunID)
	return nil
}

// close drops the readers and the writers' copies.
func (b *backupRun) close() {
	if b.readers != nil {
		b.readers.close()
	}
	if b.writerStaging != "" {
		os.RemoveAll(b.writerStaging)
	}
}

// quiesceAndSnap fixes the run's view of the data: the inactivity wait,
// the writers' freeze, the snapshot set, the thaw. It returns where the
// snapshots are (for the hooks).
func (b *backupRun) quiesceAndSnap(ctx context.Context) ([]string, error) {
	o, res := &b.o, b.res
	if o.Plan != nil {
		// old snapshots are deleted and dirty pages written back before
		// the writers freeze, not while they wait
		o.Plan.RemoveLeftovers()
		if err := o.Plan.Flush(); err != nil {
			res.Warnings = append(res.Warnings, "flushing before the snapshot: "+err.Error())
		}
	}
	var held *hold.Report
	// takeSet freezes the writers, creates the set with the writers of its
	// filesystems held, and thaws; the function it returns undoes it, for a
	// set that a write during its making spoilt
	takeSet := func(ctx context.Context, ready func(forgive bool)) (func(), error) {
		var prepared *snapshot.Prepared
		if o.Plan != nil {
			// labels and directories are written before the freeze
			var err error
			if prepared, err = o.Plan.Prepare(ctx); err != nil {
				return nil, err
			}
		}
		// a write while the labels were written counts; one while the
		// writers freeze is theirs and does not
		ready(false)
		info := quiesce.FreezeInfo{RunID: o.RunID, Covered: coverage(o.Plan), StagingDir: b.writerStaging}
		frozen, err := freezeAll(ctx, o.Writers, info)
		if err != nil {
			return nil, errors.Join(err, prepared.Abort())
		}
		ready(len(o.Writers) > 0)
		var serr error
		if o.Plan != nil {
			b.set, held, serr = CreateHeld(ctx, o.Plan, prepared, o.Hold)
			b.qinfo.Hold = holdInfo(held)
		}
		b.qinfo.Writers = thawAll(frozen)
		clear(b.subs)
		for _, fw := range frozen {
			if fw.frozen != nil {
				// keyed by the archiver's repository paths (on Windows
				// /C/db/x.sqlite for C:\db\x.sqlite)
				for orig, cp := range fw.frozen.Substitutes {
					b.subs[repoPath(orig)] = cp
				}
			}
		}
		return func() {
			if err := b.set.Release(); err != nil {
				res.Warnings = append(res.Warnings, "releasing a snapshot taken again: "+err.Error())
			}
			b.set = nil
		}, serr
	}
	if o.Inactivity > 0 {
		ir, err := quiesce.WaitQuiet(ctx, b.paths, o.Inactivity, o.MaxWait,
			quiesce.InactivityOptions{Snap: takeSet, SnapOnlyWhenQuiet: o.FailWithoutQuiet})
		if err != nil {
			return nil, fmt.Errorf("inactivity wait: %w", err)
		}
		q := b.qinfo
		q.WaitedMs = float64(ir.Waited.Microseconds()) / 1000
		q.QuietForMs = float64(ir.QuietFor.Microseconds()) / 1000
		q.Quiet, q.WaitMessage, q.Resnapped = ir.Quiet, ir.Message, ir.Resnapped
		if ir.Fallback != "" {
			res.Notes = append(res.Notes, ir.Fallback)
		}
		if !ir.Quiet {
			if o.FailWithoutQuiet {
				return nil, errors.New(ir.Message)
			}
			res.Warnings = append(res.Warnings, ir.Message)
		}
	} else if _, err := takeSet(ctx, func(bool) {}); err != nil {
		return nil, err
	}
	if err := thawErrors(b.qinfo.Writers); err != nil {
		// the snapshot is good; the application may still be paused
		res.Warnings = append(res.Warnings, err.Error())
	}
	if b.set == nil {
		return nil, nil
	}
	b.sources, b.snapped = setSources(b.set, held.PointInTime())
	if held != nil && held.Message != "" {
		res.Warnings = append(res.Warnings, "hold: "+held.Message+"; the btrfs snapshot is crash-consistent")
	}
	res.Notes = append(res.Notes, b.set.Notes...)
	res.Warnings = append(res.Warnings, b.set.Warnings...)
	b.qinfo.VSSWriters = vssWriters(b.set)
	return b.set.Locations(), nil
}

// archive reads the sources (or, for a follow-up, only its files) through
// the snapshot set or live, stores what changed and flushes it.
func (b *backupRun) archive(ctx context.Context) error {
	var v view.View = &view.Live{}
	if b.set != nil {
		v = b.set.View()
	}
	sv := &substituteView{View: v, subs: b.subs}
	reader := &fileReader{readers: b.readers, snapped: func(p string) bool { return b.snapped(p) || sv.substituted(p) }}
	opts := archiver.Options{
		Excludes: b.scoped, Reader: reader, Progress: b.o.Progress, OnProblem: b.o.OnProblem, Scan: b.o.Scan,
		FromSnapshot: func(f view.File) bool { return snapshot.OriginOf(f) != snapshot.Live },
	}
	if b.parent != nil {
		opts.Parent = b.parent.Tree
	}
	if b.followUp != nil {
		opts.Only = b.followUp.paths()
	}
	ares, err := archiver.New(b.r, sv, opts).Run(ctx, b.paths)
	if err != nil {
		// what was stored is durable and indexed for the next run to reuse
		_ = b.r.Flush(context.Background())
		return err
	}
	if err := b.r.Flush(ctx); err != nil {
		return err
	}
	b.ares = ares
	return nil
}

// manifest writes the snapshot of what archive stored.
func (b *backupRun) manifest(ctx context.Context) (quiesce.Outcome, error) {
	o, ares := &b.o, b.ares
	s := &repo.Snapshot{
		Time: snapshotTime(b.start, o.Time), Host: o.Host, Paths: b.paths, Tags: o.Tags, Excludes: o.Excludes,
		Tree: ares.Tree, Program: "stillpoint " + Version, Stats: ares.Stats,
		Outcomes: map[string]int64{}, Sources: b.sources,
	}
	if u, err := user.Current(); err == nil {
		s.User = u.Username
	}
	if b.parent != nil {
		id := b.parent.ID
		s.Parent = &id
	}
	counts := ares.Outcomes
	b.res.FilesUnchanged = ares.FilesUnchanged
	if b.followUp != nil {
		counts = b.followUp.fill(s, b.parent, ares)
		b.res.FilesUnchanged = b.followUp.unchanged(s, ares)
	}
	for oc, n := range counts {
		if n != 0 {
			s.Outcomes[oc.String()] = n
		}
	}
	s.Partial = counts.NotWhole() > 0
	s.Consistency = weakest(s.Sources)
	q := b.qinfo
	if o.Inactivity > 0 || len(q.Writers) > 0 || len(b.res.Hooks) > 0 || q.Hold != nil || len(q.VSSWriters) > 0 {
		s.Quiesce = q
	}
	ws := b.r.Stats()
	s.Stats.DataAdded = ws.DataAdded.Load()
	s.Stats.StoredAdded = ws.StoredAdded.Load()
	s.Stats.BlobsAdded = ws.Blobs.Load()
	s.Stats.DurationSecs = time.Since(b.start).Seconds()
	if _, err := b.r.SaveSnapshot(ctx, s); err != nil {
		return quiesce.Outcome{}, err
	}
	b.saved = s
	return outcomeFor(s), nil
}

// release drops the snapshot set. It may be called more than once (the
// hook sequence calls it, and the composition defers it for every other
// way out); only the first call does anything.
func (b *backupRun) release(context.Context) error {
	if b.set == nil {
		return nil
	}
	set := b.set
	b.set = nil
	if err := set.Release(); err != nil {
		return fmt.Errorf("release snapshot set: %w (stillpoint doctor --cleanup removes what is left)", err)
	}
	return nil
}

// report completes the result: the snapshot, its problems, the file log
// and the retention applied after it.
func (b *backupRun) report(ctx context.Context) error {
	res := b.res
	res.Snapshot = b.saved
	if b.ares != nil {
		res.Problems = b.ares.Problems
	}
	if b.o.LogDir != "" {
		path, err := writeFileLog(b.o.LogDir, b.saved, res.Problems)
		if err != nil {
			res.Warnings = append(res.Warnings, "file log not written: "+err.Error())
		}
		res.FileLog = path
	}
	if b.o.Retention != nil {
		var err error
		if res.Retention, err = ApplyRetention(ctx, b.r, b.saved, *b.o.Retention); err != nil {
			return fmt.Errorf("retention: %w", err)
		}
	}
	return nil
}

// sequence runs the phases from quiesceAndSnap to release between the hook
// points, then report. The snapshot set is released however it ends.
func (b *backupRun) sequence(ctx context.Context) (*BackupResult, error) {
	defer func() {
		if err := b.release(context.WithoutCancel(ctx)); err != nil {
			b.res.Warnings = append(b.res.Warnings, err.Error())
		}
	}()
	phases := quiesce.Phases{
		Snapshot: b.quiesceAndSnap,
		Backup: func(ctx context.Context, _ []string) (quiesce.Outcome, error) {
			if err := b.archive(ctx); err != nil {
				return quiesce.Outcome{}, err
			}
			return b.manifest(ctx)
		},
		Release: b.release,
	}
	runner := &quiesce.HookRunner{Hooks: b.o.Hooks, Log: b.o.OnHook}
	seq, err := runner.Sequence(ctx, quiesce.HookEnv{RunID: b.o.RunID, Sources: b.paths}, phases)
	if seq != nil {
		b.res.Hooks = seq.Hooks
		b.res.Warnings = append(b.res.Warnings, seq.Warnings()...)
	}
	if err != nil {
		if b.saved != nil {
			// the snapshot is saved; only a cleanup step failed after it
			b.res.Snapshot, b.res.Problems = b.saved, b.ares.Problems
		}
		return b.res, err
	}
	return b.res, b.report(ctx)
}
