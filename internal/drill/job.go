package drill

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/stillpoint-backup/stillpoint/internal/job"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// FromJob is the drill a job file's drill: section describes: its level,
// scratch directory, read-back and verifiers. A job without the section
// is drilled at level read.
func FromJob(j *job.Job) Options {
	o := Options{Level: Read, ReadBack: job.DefaultReadBack}
	d := j.Drill
	if d == nil {
		return o
	}
	if l, err := ParseLevel(d.Level); err == nil { // validated by job.Load
		o.Level = l
	}
	o.Scratch = d.Scratch
	if d.ReadBack > 0 {
		o.ReadBack = d.ReadBack
	}
	for _, v := range d.Verify {
		o.Verifiers = append(o.Verifiers, Spec{Kind: v.Kind, Path: v.Path, Command: v.Command,
			Query: v.Query, Database: v.Database, User: v.User, Timeout: v.Timeout})
	}
	return o
}

// JobSnapshot is the newest of snaps (oldest first, as Repository.Snapshots
// returns them) taken of the job's host (its host:, else this machine's)
// and paths. The job's paths are put in the form a backup writes in the
// manifest (package run): absolute OS paths as pathmap.Abs spells them
// (C:\Users\me on Windows, not /C/Users/me), sorted, without repeats.
func JobSnapshot(snaps []*repo.Snapshot, j *job.Job) (*repo.Snapshot, error) {
	host := j.Host
	if host == "" {
		host, _ = os.Hostname()
	}
	var paths []string
	for _, src := range j.Sources {
		p, err := pathmap.Abs(src.Path)
		if err != nil {
			p = src.Path
		}
		paths = append(paths, p)
	}
	sort.Strings(paths)
	paths = slices.Compact(paths)
	for i := len(snaps) - 1; i >= 0; i-- {
		if s := snaps[i]; s.Host == host && pathmap.SamePaths(s.Paths, paths) {
			return s, nil
		}
	}
	return nil, fmt.Errorf("no snapshot of host %s with the paths of job %s (%s): back it up first, or name a SNAPSHOT", host, j.File, strings.Join(paths, ", "))
}

// CursorFile is where the read-back rotation of the repository with id
// repoID is kept below cacheDir, so the CLI and the daemon share it.
func CursorFile(cacheDir, repoID string) string {
	return filepath.Join(cacheDir, "drill", repoID+".read-back")
}

// RunAndStore drills s under a shared repository lock and stores the
// result beside the snapshot. A verification that fails is a stored result
// with OK false. With a result, err is a scratch directory that could not
// be removed (the drill ran); without one, the drill could not run, or its
// result could not be stored.
func RunAndStore(ctx context.Context, r *repo.Repository, s *repo.Snapshot, opts Options) (*repo.DrillResult, error) {
	lock, err := r.Lock(ctx, false, "drill")
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	res, err := Run(ctx, r, s, opts)
	if res == nil {
		return nil, err
	}
	if serr := r.SaveDrill(ctx, res); serr != nil {
		return nil, fmt.Errorf("the drill ran (ok: %v) but its result could not be stored: %w", res.OK, serr)
	}
	return res, err
}
