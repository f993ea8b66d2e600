package web

import (
	"context"
	"errors"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// Source is what the pages, the API and "run now" need of the daemon. The
// methods are called from concurrent requests; each must be safe for that
// and should answer from memory or the history database quickly.
type Source interface {
	// Jobs returns the status of every job, in the order to show them.
	Jobs(ctx context.Context) ([]JobStatus, error)
	// Runs returns the newest runs of job, newest first, at most limit
	// (limit > 0). An unknown job is an error wrapping ErrNotFound.
	Runs(ctx context.Context, job string, limit int) ([]RunSummary, error)
	// Run returns one run with its flagged files, or an error wrapping
	// ErrNotFound.
	Run(ctx context.Context, id string) (*RunDetail, error)
	// RunNow starts a run of job and returns its id without waiting for
	// it. An unknown job wraps ErrNotFound; a job that is running already
	// wraps ErrBusy.
	RunNow(ctx context.Context, job string) (runID string, err error)
	// Repositories are the repositories whose snapshots are shown and
	// browsed. An error is shown on the snapshots page; the rest works on.
	Repositories(ctx context.Context) ([]Repository, error)
}

// Errors a Source wraps so the handler can answer 404 and 409.
var (
	ErrNotFound = errors.New("not found")
	ErrBusy     = errors.New("already running")
)

// Repository is an open repository the daemon backs up to, with the name
// the pages show for it (the jobs' repository setting, say).
type Repository struct {
	Name string
	Repo *repo.Repository
}

// JobStatus is one job as the status page shows it.
type JobStatus struct {
	Name       string   `json:"name"`
	Schedule   string   `json:"schedule"` // as written in the job, "" when run by hand only
	Paths      []string `json:"paths"`
	Repository string   `json:"repository"` // the Repository.Name its snapshots go to
	// LastRun is the newest finished run, nil before the first.
	LastRun *RunSummary `json:"last_run"`
	// LastSuccess is the end of the newest run that wrote a snapshot
	// (status ok or partial); zero when there was none.
	LastSuccess time.Time `json:"last_success,omitzero"`
	// NextRun is when the scheduler runs the job next; zero when it is
	// not scheduled.
	NextRun time.Time `json:"next_run,omitzero"`
	// Overdue: a scheduled run was missed or its last success is older
	// than the schedule allows. The daemon decides; the page marks it.
	Overdue       bool   `json:"overdue"`
	OverdueReason string `json:"overdue_reason,omitempty"`
	// Running is the run in progress, nil when none.
	Running *RunSummary `json:"running"`
	// Pending are the files queued for a retry between runs.
	Pending []PendingRetry `json:"pending_retries"`
	// DrillSchedule is the job's drill.schedule: as written, "" when the
	// daemon does not drill it; NextDrill when it drills it next.
	DrillSchedule string    `json:"drill_schedule,omitempty"`
	NextDrill     time.Time `json:"next_drill,omitzero"`
	// LastDrill is the newest finished drill (kind drill: status ok when
	// every check passed, else failed), nil before the first.
	LastDrill *RunSummary `json:"last_drill"`
}

// PendingRetry is one file in a job's retry queue.
type PendingRetry struct {
	Path        string          `json:"path"`
	Outcome     outcome.Outcome `json:"outcome"` // what the last attempt recorded
	Reason      string          `json:"reason"`
	Attempts    int             `json:"attempts"`
	NextAttempt time.Time       `json:"next_attempt,omitzero"`
}

// Run statuses.
const (
	StatusRunning = "running"
	StatusOK      = "ok"      // snapshot written, every file whole
	StatusPartial = "partial" // snapshot written, some files flagged (exit code 3)
	StatusFailed  = "failed"  // no snapshot
)

// RunSummary is one run in a list.
type RunSummary struct {
	ID      string    `json:"id"`
	Job     string    `json:"job"`
	Kind    string    `json:"kind"`    // backup, follow-up, drill
	Trigger string    `json:"trigger"` // schedule, manual, retry
	Start   time.Time `json:"start"`
	End     time.Time `json:"end,omitzero"` // zero while running
	Status  string    `json:"status"`
	// Snapshot is the id of the snapshot the run wrote, "" when none.
	Snapshot   string         `json:"snapshot"`
	Outcomes   outcome.Counts `json:"outcomes"`
	BytesRead  int64          `json:"bytes_read"`
	BytesAdded int64          `json:"bytes_added"`
	// Error is why the run failed, or the first error of a partial one.
	Error string `json:"error,omitempty"`
	// Retry is what the run did with the job's retry queue: "unable to
	// back up 3 files (next attempt within 15 minutes)" after a full run,
	// "3 files backed up on retry" after a follow-up; "" when it had
	// nothing to say. It is not an error.
	Retry string `json:"retry,omitempty"`
}

// Duration is the run's wall time so far.
func (r *RunSummary) Duration(now time.Time) time.Duration {
	if r.End.IsZero() {
		return now.Sub(r.Start)
	}
	return r.End.Sub(r.Start)
}

// RunDetail is one run with what its page shows.
type RunDetail struct {
	RunSummary
	Consistency string        `json:"consistency,omitempty"` // the snapshot's weakest level
	Flagged     []FlaggedFile `json:"flagged"`               // every file not stored whole
	Hooks       []HookResult  `json:"hooks"`
	Writers     []WriterInfo  `json:"writers"`
	// FreezeMs is how long the snapshot set took to create (the writers'
	// freeze window); QuietWaitSecs the write-inactivity wait before it.
	FreezeMs      float64  `json:"freeze_ms"`
	QuietWaitSecs float64  `json:"quiet_wait_secs"`
	Errors        []string `json:"errors"`
	// Checks are a drill's checks in the order they ran: the repository
	// check, the restore, then each verifier; [] for a backup.
	Checks []DrillCheck `json:"checks"`
}

// DrillCheck is one check of a drill.
type DrillCheck struct {
	Name    string `json:"name"` // check, restore, sqlite, postgres, mysql, git, command
	OK      bool   `json:"ok"`
	Message string `json:"message"` // what it verified, or why it failed
}

// FlaggedFile is a file a run did not store whole, and why.
type FlaggedFile struct {
	Path    string          `json:"path"`
	Outcome outcome.Outcome `json:"outcome"`
	Reason  string          `json:"reason"`           // locked, open-for-writing, …
	Holder  string          `json:"holder,omitempty"` // the process that held it, "name[pid]"
	Message string          `json:"message,omitempty"`
	Queued  bool            `json:"queued"` // put in the retry queue
}

// HookResult is one hook command of a run.
type HookResult struct {
	Name         string  `json:"name"` // before-backup, after-snapshot, …
	Command      string  `json:"command"`
	OK           bool    `json:"ok"`
	DurationSecs float64 `json:"duration_secs"`
	Message      string  `json:"message,omitempty"`
}

// WriterInfo is one application writer frozen around the snapshot set.
type WriterInfo struct {
	Name        string  `json:"name"`
	HeldMs      float64 `json:"held_ms"`
	Frozen      bool    `json:"frozen"`
	Consistency string  `json:"consistency,omitempty"`
	Error       string  `json:"error,omitempty"`
}

// The API's lists are [] when empty, never null.

func (j *JobStatus) normalize() {
	j.Paths = nonNil(j.Paths)
	j.Pending = nonNil(j.Pending)
	if j.LastRun != nil {
		j.LastRun.normalize()
	}
	if j.Running != nil {
		j.Running.normalize()
	}
	if j.LastDrill != nil {
		j.LastDrill.normalize()
	}
}

func (r *RunSummary) normalize() {
	if r.Outcomes == nil {
		r.Outcomes = outcome.Counts{}
	}
}

func (r *RunDetail) normalize() {
	r.RunSummary.normalize()
	r.Flagged = nonNil(r.Flagged)
	r.Hooks = nonNil(r.Hooks)
	r.Writers = nonNil(r.Writers)
	r.Errors = nonNil(r.Errors)
	r.Checks = nonNil(r.Checks)
}
