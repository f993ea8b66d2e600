package run

import (
	"context"
	"errors"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/retryq"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// ErrNothingQueued is RunJob's answer to a follow-up of an empty queue (or,
// with DueOnly, of one whose entries are not due yet): nothing ran.
var ErrNothingQueued = errors.New("no file is queued for retry")

// JobRun is one run of a job, as `stillpoint run` and the daemon make it:
// a full backup of its sources, or a follow-up of the files its retry
// queue holds, after which the queue records what the run could not back
// up.
type JobRun struct {
	// Name is the job's name, for errors.
	Name string
	// Options are the job's, checked (FromJob). RunID and Plan are set by
	// RunJob.
	Options BackupOptions
	Queue   *retryq.Queue
	// FollowUp backs up only the queued files; DueOnly only those whose
	// next attempt has come.
	FollowUp, DueOnly bool
	Policy            retryq.Policy
	// Open opens the repository. It is called once the snapshot plan is
	// made, so that a required snapshot that cannot be taken fails before
	// a repository is created.
	Open func(ctx context.Context) (*repo.Repository, error)
	// Prepare, when set, is called just before the backup with the open
	// repository and the options, to hook in progress and reports; the
	// function it returns is called once the backup returned.
	Prepare func(r *repo.Repository, o *BackupOptions) (done func())
	// Now is the clock of the queue's times; nil is time.Now.
	Now func() time.Time
}

// JobResult is what RunJob did.
type JobResult struct {
	// Repository is the repository opened; nil when the run ended before.
	Repository *repo.Repository
	// Backup is the backup's result; nil when no backup ran.
	Backup *BackupResult
	// Files are the files a follow-up tried.
	Files []RetryFile
	// Retry is what the run did to the queue; nil when it wrote no
	// snapshot (the queue is left as it was).
	Retry *RetryOutcome
}

// RetryOutcome is a run's change to its job's retry queue.
type RetryOutcome struct {
	Change retryq.Change
	// Sentence is the summary's words: "unable to back up 3 files (next
	// attempt within 15 minutes)", "3 files backed up on retry".
	Sentence string
	// Left is the number of files queued after the run; Next the earliest
	// next attempt (zero: none queued).
	Left int
	Next time.Time
	// Err is why the queue could not be written; the snapshot stands.
	Err error
}

// RunJob runs the job once. Its error is the backup's (res.Backup may
// still hold a snapshot saved before it); ErrNothingQueued for a
// follow-up with nothing to do.
func RunJob(ctx context.Context, jr JobRun) (*JobResult, error) {
	now := jr.Now
	if now == nil {
		now = time.Now
	}
	o := jr.Options
	res := &JobResult{}
	planned := o.Sources
	if jr.FollowUp {
		if err := jr.Queue.Reload(); err != nil {
			return res, err
		}
		entries := jr.Queue.Entries()
		if jr.DueOnly {
			entries = jr.Queue.Due(now())
		}
		for _, e := range entries {
			res.Files = append(res.Files, RetryFile{Path: e.Path, Counted: e.Outcome})
		}
		if len(res.Files) == 0 {
			return res, ErrNothingQueued
		}
		planned = FollowUpSources(o.Sources, res.Files)
	} else if err := archiver.CheckRoots(&view.Live{}, sourcePaths(o.Sources)); err != nil {
		return res, err
	}
	o.RunID = NewRunID()
	var err error
	if o.Plan, err = PlanSnapshots(planned, o.RunID, o.VSS); err != nil {
		return res, err
	}
	r, err := jr.Open(ctx)
	if err != nil {
		return res, err
	}
	res.Repository = r
	done := func() {}
	if jr.Prepare != nil {
		done = jr.Prepare(r, &o)
	}
	if jr.FollowUp {
		res.Backup, err = FollowUp(ctx, r, o, nil, res.Files)
	} else {
		res.Backup, err = Backup(ctx, r, o)
	}
	done()
	if res.Backup == nil || res.Backup.Snapshot == nil {
		return res, err
	}
	tried := res.Backup.Snapshot.Paths
	if jr.FollowUp {
		tried = FollowUpPaths(res.Files)
	}
	t := now()
	ch, qerr := jr.Queue.Update(t, tried, retryq.FromProblems(res.Backup.Problems), jr.Policy)
	if qerr != nil {
		res.Backup.Warnings = append(res.Backup.Warnings, "retry queue not updated: "+qerr.Error())
	}
	res.Retry = &RetryOutcome{Change: ch, Sentence: RetrySentence(ch, t, jr.FollowUp),
		Left: jr.Queue.Len(), Next: jr.Queue.NextAttempt(), Err: qerr}
	return res, err
}

func sourcePaths(sources []Source) []string {
	out := make([]string, 0, len(sources))
	for _, s := range sources {
		out = append(out, s.Path)
	}
	return out
}
