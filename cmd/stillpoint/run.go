package main

import (
	"context"
	"errors"
	"time"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/hold"
	"github.com/stillpoint-backup/stillpoint/internal/livefile"
	"github.com/stillpoint-backup/stillpoint/internal/retryq"
	"github.com/stillpoint-backup/stillpoint/internal/run"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

type runFlags struct {
	jobsDir    string
	stateDir   string
	followUp   bool
	retryAfter time.Duration
}

func newRunCmd(g *globals) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run [flags] JOB",
		Short: "Run a job once in the foreground, with its retention and retry queue",
		Long: `Run the backup a job file describes (a path, or a job's name in the jobs
directory), apply its retention, and record in the job's retry queue the files
it could not back up (failed or skipped-open). With --follow-up only the queued
files are backed up again: the new snapshot is the last one with them filled in.

Exit codes as for backup: 0 every file stored whole, 3 some were not, 1 nothing
was recorded.`,
		Example: `  stillpoint run mail                        # /etc/stillpoint/jobs.d/mail.yaml as root
  stillpoint run mail --follow-up            # only the files the last runs could not back up
  stillpoint run ./app.yaml --state-dir /var/tmp/state --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runJob(cmd.Context(), g, f, args[0])
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.jobsDir, "jobs", run.JobsDir(), "directory of the job files, looked up by name as NAME.yaml")
	fl.StringVar(&f.stateDir, "state-dir", run.StateDir(), "directory of the jobs' retry queues")
	fl.BoolVar(&f.followUp, "follow-up", false, "back up only the files queued for retry, now")
	fl.DurationVar(&f.retryAfter, "retry-after", retryq.DefaultRetryAfter, "wait before a queued file is tried again; doubles with each attempt that fails")
	return cmd
}

func runJob(ctx context.Context, g *globals, f runFlags, arg string) error {
	if f.retryAfter <= 0 {
		return &exitError{code: exitUsage, err: errors.New("--retry-after takes a duration above 0")}
	}
	path, err := run.FindJob(arg, f.jobsDir)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	rep := g.reporter()
	bf := backupFlags{jobFile: path, retries: livefile.DefaultRetries, hold: "writers", holdFor: hold.DefaultTimeout}
	o, err := checkedBackupOptions(g, bf, nil, rep)
	if err != nil {
		return err
	}
	name := run.JobName(path)
	q, err := retryq.Open(f.stateDir, name)
	if err != nil {
		return err
	}
	if note := q.Damaged(); note != "" {
		rep.Warn(q.Path(), "retry-queue", note)
	}
	planned := o.Sources
	var files []run.RetryFile
	if f.followUp {
		for _, e := range q.Entries() {
			files = append(files, run.RetryFile{Path: e.Path, Counted: e.Outcome})
		}
		if len(files) == 0 {
			rep.Event(map[string]any{"type": "summary", "job": name, "follow_up": true, "queued": 0, "queue": q.Path()})
			rep.Printf("job %s: no file is queued for retry\n", name)
			return nil
		}
		planned = run.FollowUpSources(o.Sources, files)
	} else if err := archiver.CheckRoots(&view.Live{}, sourcePaths(o.Sources)); err != nil {
		return err
	}
	o.RunID = run.NewRunID()
	if o.Plan, err = run.PlanSnapshots(planned, o.RunID, o.VSS); err != nil {
		return err
	}
	r, err := openForBackup(ctx, g, rep)
	if err != nil {
		return err
	}
	stop := reportRun(rep, r, &o)
	var res *run.BackupResult
	if f.followUp {
		res, err = run.FollowUp(ctx, r, o, nil, files)
	} else {
		res, err = run.Backup(ctx, r, o)
	}
	stop()
	var retry *retryReport
	if res != nil && res.Snapshot != nil {
		tried := res.Snapshot.Paths
		if f.followUp {
			tried = run.FollowUpPaths(files)
		}
		now := time.Now()
		ch, qerr := q.Update(now, tried, retryq.FromProblems(res.Problems), retryq.Policy{RetryAfter: f.retryAfter})
		if qerr != nil {
			res.Warnings = append(res.Warnings, "retry queue not updated: "+qerr.Error())
		}
		retry = &retryReport{Job: name, Queue: q.Path(), FollowUp: f.followUp, Change: ch,
			Sentence: run.RetrySentence(ch, now, f.followUp), Left: q.Len(), Next: q.NextAttempt()}
	}
	return finishBackup(g, rep, r, res, err, retry)
}

// retryReport is what a run did to its job's retry queue, for the summary.
type retryReport struct {
	Job      string
	Queue    string
	FollowUp bool
	Change   retryq.Change
	Sentence string
	Left     int       // files queued after the run
	Next     time.Time // the earliest next attempt (zero: none queued)
}

func (r *retryReport) json() map[string]any {
	paths := func(es []retryq.Entry) []string {
		out := []string{}
		for _, e := range es {
			out = append(out, e.Path)
		}
		return out
	}
	m := map[string]any{
		"job": r.Job, "queue": r.Queue, "follow_up": r.FollowUp, "sentence": r.Sentence,
		"queued": paths(r.Change.Queued), "resolved": paths(r.Change.Resolved), "left": r.Left,
	}
	if !r.Next.IsZero() {
		m["next_attempt"] = r.Next
	}
	if r.FollowUp {
		m["backed_up_on_retry"] = len(r.Change.Resolved)
	}
	return m
}
