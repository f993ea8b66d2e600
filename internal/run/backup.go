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
	"github.com/stillpoint-backup/stillpoint/internal/livefile"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// Version is the program's version, recorded in every snapshot.
var Version = "0.1.0-dev"

// BackupOptions describe one backup.
type BackupOptions struct {
	Paths    []string
	Excludes []string
	Tags     []string
	Host     string
	// Snapshot is the planned snapshot set; nil reads every source live.
	Snapshot *snapshot.Plan
	// OpenFiles says how files read live are handled (strategy, retries,
	// staging directory).
	OpenFiles livefile.Config
	Progress  *archiver.Progress
	OnProblem func(archiver.Problem)
	Scan      bool
	// Force reads every file even when the parent says it is unchanged.
	Force bool
	// LogDir receives the run's file log (one line per file not whole); "" for none.
	LogDir string
}

// BackupResult is what a backup produced.
type BackupResult struct {
	Snapshot *repo.Snapshot
	Parent   *repo.Snapshot
	Problems []archiver.Problem
	// Notes and Warnings about how the data was read (snapshot fallbacks,
	// nested subvolumes, open-file detection limits).
	Notes    []string
	Warnings []string
	FileLog  string
}

// ExitCode is 0 when every file is whole, 3 when some were not read whole.
func (b *BackupResult) ExitCode() int {
	if b.Snapshot.Partial {
		return 3
	}
	return 0
}

// Backup runs one backup into r: lock, snapshot set, archive, flush,
// manifest. The snapshot set is released however the run ends.
func Backup(ctx context.Context, r *repo.Repository, o BackupOptions) (res *BackupResult, err error) {
	start := time.Now()
	paths, err := absPaths(o.Paths)
	if err != nil {
		return nil, err
	}
	excludes, err := filter.CompileAll(o.Excludes)
	if err != nil {
		return nil, err
	}
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	lock, err := r.Lock(ctx, false, "backup")
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()

	var parent *repo.Snapshot
	if !o.Force {
		parent, err = findParent(ctx, r, o.Host, paths)
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
	lfCfg := o.OpenFiles
	lfCfg.Open = open
	live, err := livefile.NewReader(lfCfg)
	if err != nil {
		return nil, err
	}
	defer live.Close()

	var v view.View = &view.Live{}
	sources := liveSources(paths)
	snapped := func(string) bool { return false }
	if o.Snapshot != nil {
		set, err := o.Snapshot.Create(ctx)
		if err != nil {
			return nil, err
		}
		defer func() {
			if rerr := set.Release(); rerr != nil {
				err = errors.Join(err, fmt.Errorf("release snapshot set: %w (stillpoint doctor --cleanup removes what is left)", rerr))
			}
		}()
		v = set.View()
		sources, snapped = setSources(set)
		res.Notes = append(res.Notes, set.Notes...)
		res.Warnings = append(res.Warnings, set.Warnings...)
	}
	reader := &fileReader{live: live, snapped: snapped}
	opts := archiver.Options{
		Excludes: excludes, Reader: reader, Progress: o.Progress, OnProblem: o.OnProblem, Scan: o.Scan,
		FromSnapshot: func(f view.File) bool { return snapshot.OriginOf(f) != snapshot.Live },
	}
	if parent != nil {
		opts.Parent = parent.Tree
	}
	ares, err := archiver.New(r, v, opts).Run(ctx, paths)
	if err != nil {
		// what was stored is durable and indexed for the next run to reuse
		_ = r.Flush(context.Background())
		return nil, err
	}
	if err := r.Flush(ctx); err != nil {
		return nil, err
	}
	snap := &repo.Snapshot{
		Time: start.UTC(), Host: o.Host, Paths: paths, Tags: o.Tags, Excludes: o.Excludes,
		Tree: ares.Tree, Program: "stillpoint " + Version, Stats: ares.Stats,
		Outcomes: map[string]int64{}, Sources: sources,
	}
	if u, err := user.Current(); err == nil {
		snap.User = u.Username
	}
	if parent != nil {
		id := parent.ID
		snap.Parent = &id
	}
	for oc, n := range ares.Outcomes {
		snap.Outcomes[oc.String()] = n
	}
	snap.Partial = ares.Outcomes.NotWhole() > 0
	snap.Consistency = weakest(sources)
	ws := r.Stats()
	snap.Stats.DataAdded = ws.DataAdded.Load()
	snap.Stats.StoredAdded = ws.StoredAdded.Load()
	snap.Stats.BlobsAdded = ws.Blobs.Load()
	snap.Stats.DurationSecs = time.Since(start).Seconds()
	if _, err := r.SaveSnapshot(ctx, snap); err != nil {
		return nil, err
	}
	res.Snapshot, res.Problems = snap, ares.Problems
	if o.LogDir != "" {
		path, err := writeFileLog(o.LogDir, snap, ares.Problems)
		if err != nil {
			res.Warnings = append(res.Warnings, "file log not written: "+err.Error())
		}
		res.FileLog = path
	}
	return res, nil
}

// weakest is the weakest consistency level over the sources.
func weakest(sources []repo.SourceInfo) string {
	rank := map[string]int{"application": 4, "volume": 3, "file": 2, "live": 1}
	level := ""
	for _, s := range sources {
		if level == "" || rank[s.Consistency] < rank[level] {
			level = s.Consistency
		}
	}
	if level == "" {
		return "live"
	}
	return level
}

func absPaths(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("no paths to back up")
	}
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, filepath.Clean(abs))
	}
	sort.Strings(out)
	return slices.Compact(out), nil
}

// findParent picks the newest snapshot of the same host and paths.
func findParent(ctx context.Context, r *repo.Repository, host string, paths []string) (*repo.Snapshot, error) {
	snaps, _, err := r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	for i := len(snaps) - 1; i >= 0; i-- {
		s := snaps[i]
		if s.Host == host && slices.Equal(s.Paths, paths) {
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
	if n := counts[outcome.Failed]; n > 0 {
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

func files(n int64) string {
	if n == 1 {
		return "1 file"
	}
	return fmt.Sprintf("%d files", n)
}
