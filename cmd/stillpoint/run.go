package main

import (
	"context"
	"errors"
	"time"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/hold"
	"github.com/stillpoint-backup/stillpoint/internal/job"
	"github.com/stillpoint-backup/stillpoint/internal/livefile"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/retryq"
	"github.com/stillpoint-backup/stillpoint/internal/run"
)

type runFlags struct {
	jobsDir    string
	stateDir   string
	followUp   bool
	retryAfter time.Duration

	retryAfterSet bool // --retry-after was given: it overrides the job's retry-after:
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
			f.retryAfterSet = cmd.Flags().Changed("retry-after")
			return runJob(cmd.Context(), g, f, args[0])
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.jobsDir, "jobs", run.JobsDir(), "directory of the job files, looked up by name as NAME.yaml")
	fl.StringVar(&f.stateDir, "state-dir", run.StateDir(), "directory of the jobs' retry queues")
	fl.BoolVar(&f.followUp, "follow-up", false, "back up only the files queued for retry, now")
	fl.DurationVar(&f.retryAfter, "retry-after", retryq.DefaultRetryAfter, "wait before a queued file is tried again; doubles with each attempt that fails (default: the job's retry-after:, else 15m)")
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
	// the job's name: and retry-after: as the daemon reads them, so both
	// share one queue and one backoff
	name, retryAfter := run.JobName(path), f.retryAfter
	if j, _, err := job.Load(path); err == nil {
		name = j.Name
		if !f.retryAfterSet && j.RetryAfter > 0 {
			retryAfter = j.RetryAfter
		}
	}
	q, err := retryq.Open(f.stateDir, name)
	if err != nil {
		return err
	}
	if note := q.Damaged(); note != "" {
		rep.Warn(q.Path(), "retry-queue", note)
	}
	jr := run.JobRun{Name: name, Options: o, Queue: q, FollowUp: f.followUp,
		Policy:  retryq.Policy{RetryAfter: retryAfter},
		Open:    func(ctx context.Context) (*repo.Repository, error) { return openForBackup(ctx, g, rep) },
		Prepare: func(r *repo.Repository, o *run.BackupOptions) func() { return reportRun(rep, r, o) },
	}
	res, err := run.RunJob(ctx, jr)
	if errors.Is(err, run.ErrNothingQueued) {
		rep.Event(map[string]any{"type": "summary", "job": name, "follow_up": true, "queued": 0, "queue": q.Path()})
		rep.Printf("job %s: no file is queued for retry\n", name)
		return nil
	}
	if res.Repository == nil {
		return err
	}
	var retry *retryReport
	if rt := res.Retry; rt != nil {
		retry = &retryReport{Job: name, Queue: q.Path(), FollowUp: f.followUp, Change: rt.Change,
			Sentence: rt.Sentence, Left: rt.Left, Next: rt.Next}
	}
	return finishBackup(g, rep, res.Repository, res.Backup, err, retry)
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
