package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/history"
	"github.com/stillpoint-backup/stillpoint/internal/livefile"
	"github.com/stillpoint-backup/stillpoint/internal/notify"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/quiesce"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/retryq"
	"github.com/stillpoint-backup/stillpoint/internal/run"
	"github.com/stillpoint-backup/stillpoint/internal/schedule"
	"github.com/stillpoint-backup/stillpoint/internal/web"
)

// Triggers recorded in the history beside the scheduler's reasons.
const triggerRetry = "retry" // a follow-up at the retry queue's next attempt

// errNoSnapshot is the scheduler's failure of a run that wrote none.
var errNoSnapshot = errors.New("no snapshot was written")

// runScheduled is the scheduler's RunFunc: one run of a job, full or
// follow-up, recorded in the history, the metrics and the queue, and
// told to the job's channels.
func (d *Daemon) runScheduled(ctx context.Context, t schedule.Trigger) error {
	if strings.HasSuffix(t.Job, drillSuffix) {
		return d.runDrill(ctx, t)
	}
	d.mu.Lock()
	js := d.jobs[t.Job]
	ar := d.requests[t.Job]
	delete(d.requests, t.Job)
	if js == nil {
		d.mu.Unlock()
		return fmt.Errorf("job %s is no longer loaded", t.Job)
	}
	if t.Reason != schedule.Manual || ar == nil {
		ar = &activeRun{id: run.NewRunID(), kind: history.Full, trigger: string(t.Reason), start: d.clock.Now()}
	}
	followUp := ar.kind == history.FollowUp
	d.running[t.Job] = ar
	d.mu.Unlock()
	d.metrics.RunStarted(t.Job)
	d.updateStatus()

	rec, res, err := d.runOnce(ctx, js, ar, followUp)

	d.mu.Lock()
	if rec != nil && rec.ID != 0 {
		d.finished[ar.id] = rec.ID
	}
	if d.running[t.Job] == ar {
		delete(d.running, t.Job)
	}
	if cur := d.jobs[t.Job]; cur != nil {
		if cur.reschedule {
			cur.reschedule = false
			d.reschedule(t.Job, cur)
		}
		d.planFollowUp(t.Job, cur, d.clock.Now(), followUp && (res == nil || res.Backup == nil || res.Backup.Snapshot == nil))
	}
	d.mu.Unlock()
	select {
	case d.pokeFollow <- struct{}{}:
	default:
	}
	d.updateStatus()
	if errors.Is(err, run.ErrNothingQueued) {
		return nil
	}
	if err == nil && (res == nil || res.Backup == nil || res.Backup.Snapshot == nil) {
		err = errNoSnapshot
	}
	return err
}

// runOnce runs the job and records what it did.
func (d *Daemon) runOnce(ctx context.Context, js *jobState, ar *activeRun, followUp bool) (*history.Run, *run.JobResult, error) {
	j := js.job
	kind := "backup"
	if followUp {
		kind = "follow-up"
	}
	d.log.Printf("job %s: %s started (%s, run %s)", j.Name, kind, ar.trigger, ar.id)
	release := d.inhibit(j.Name)
	pingCtx, cancelPing := context.WithTimeout(context.WithoutCancel(ctx), d.opts.NotifyTimeout)
	go func() {
		defer cancelPing()
		d.logNotify(j.Name, js.notify.Send(pingCtx, notify.Event{Job: j.Name, Kind: string(ar.kind), Status: notify.Started, Start: ar.start}))
	}()

	res, err := d.backup(ctx, js, followUp)
	release()
	if errors.Is(err, run.ErrNothingQueued) {
		d.log.Printf("job %s: no file is due for retry", j.Name)
		return nil, res, err
	}
	rec := d.record(js, ar, res, err)
	// the history and the metrics outlive a stop: record with a context
	// of their own
	recCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if id, herr := d.hist.Record(recCtx, rec); herr != nil {
		d.log.Printf("job %s: the run was not recorded in the history: %v", j.Name, herr)
	} else {
		rec.ID = id
		if _, perr := d.hist.Prune(recCtx, history.DefaultRetention(d.clock.Now())); perr != nil {
			d.log.Printf("the history: %v", perr)
		}
	}
	d.metrics.RunFinished(runMetrics(rec, res))
	d.metrics.SetPendingRetries(j.Name, js.queue.Len())
	d.log.Printf("job %s: %s", j.Name, summaryLine(rec, res, err))
	ev := notifyEvent(rec, res, err)
	nctx, ncancel := context.WithTimeout(context.WithoutCancel(ctx), d.opts.NotifyTimeout)
	defer ncancel()
	d.logNotify(j.Name, js.notify.Send(nctx, ev))
	return rec, res, err
}

// backup builds the job's options and runs it through Options.RunJob.
func (d *Daemon) backup(ctx context.Context, js *jobState, followUp bool) (*run.JobResult, error) {
	j := js.job
	o, err := run.FromJob(j, filepath.Join(run.CacheDir(), "staging"))
	if err != nil {
		return &run.JobResult{}, err
	}
	if err := prepareStaging(o); err != nil {
		return &run.JobResult{}, err
	}
	retryAfter := j.RetryAfter
	if retryAfter <= 0 {
		retryAfter = retryq.DefaultRetryAfter
	}
	policy := retryq.Policy{RetryAfter: retryAfter}
	if st, ok := d.sched.JobStatus(j.Name); ok {
		policy.NextFullRun = st.Next
	}
	access := js.access
	jr := run.JobRun{Name: j.Name, Options: o, Queue: js.queue, FollowUp: followUp, DueOnly: followUp, Policy: policy,
		Now: d.clock.Now,
		Open: func(ctx context.Context) (*repo.Repository, error) {
			r, _, err := run.OpenOrCreate(ctx, access)
			return r, err
		},
		Prepare: func(r *repo.Repository, o *run.BackupOptions) func() {
			o.LogDir = filepath.Join(run.CacheDir(), r.Config().ID, "logs")
			return func() {}
		},
	}
	res, err := d.opts.RunJob(ctx, jr)
	if res == nil {
		res = &run.JobResult{}
	}
	if res.Repository != nil {
		res.Repository.Close()
	}
	return res, err
}

// prepareStaging checks the staging directories of the sources that stage
// files and empties them of an earlier run's leftovers.
func prepareStaging(o run.BackupOptions) error {
	var all []string
	for _, s := range o.Sources {
		all = append(all, s.Path)
	}
	for _, s := range o.Sources {
		if s.OpenFiles.Strategy != livefile.StrategyStage {
			continue
		}
		if err := livefile.CheckStagingDir(s.OpenFiles.StagingDir, all); err != nil {
			return err
		}
		livefile.PurgeStaging(s.OpenFiles.StagingDir)
	}
	return nil
}

// inhibit keeps the machine awake for a run; a failure is logged once.
func (d *Daemon) inhibit(job string) (release func()) {
	if d.opts.Inhibitor == nil {
		return func() {}
	}
	rel, err := d.opts.Inhibitor.Inhibit("stillpoint is backing up " + job)
	if err != nil {
		d.inhibitErr.Do(func() {
			d.log.Printf("the machine may sleep during runs: no sleep inhibitor: %v (said once)", err)
		})
		return func() {}
	}
	return rel
}

func (d *Daemon) logNotify(job string, results []notify.Result) {
	for _, r := range results {
		if r.Err != nil {
			d.log.Printf("job %s: notification not sent: %s", job, r)
		}
	}
}

// record is the history's record of a run.
func (d *Daemon) record(js *jobState, ar *activeRun, res *run.JobResult, err error) *history.Run {
	rec := &history.Run{Job: js.job.Name, Kind: ar.kind, Trigger: ar.trigger, Start: ar.start, End: d.clock.Now(),
		Status: history.Failed, Outcomes: map[string]int{}}
	if err != nil {
		rec.Errors = append(rec.Errors, err.Error())
	}
	if res == nil || res.Backup == nil {
		return rec
	}
	b := res.Backup
	for _, h := range b.Hooks {
		rec.Steps = append(rec.Steps, hookStep(h))
	}
	s := b.Snapshot
	if s == nil {
		return rec
	}
	rec.Snapshot = s.ID.String()
	rec.Status = history.Success
	if b.ExitCode() == 3 || s.Partial {
		rec.Status = history.Partial
	}
	for o, n := range s.OutcomeCounts() {
		rec.Outcomes[o.String()] = int(n)
	}
	for _, p := range b.Problems {
		rec.Flagged = append(rec.Flagged, history.File{Path: p.Path, Outcome: p.Outcome.String(), Reason: problemReason(p)})
	}
	for _, src := range s.Sources {
		rec.FreezeWindow = max(rec.FreezeWindow, ms(src.FreezeMs))
	}
	if q := s.Quiesce; q != nil {
		rec.QuietWait = ms(q.WaitedMs)
		for _, w := range q.Writers {
			st := history.Step{Kind: "writer", Name: w.Name, Status: "frozen", Freeze: ms(w.HeldMs), Message: w.Error}
			if !w.Frozen {
				st.Status, st.Message = "not frozen", strings.TrimPrefix(w.Reason+"; "+w.Error, "; ")
			}
			rec.Steps = append(rec.Steps, st)
			rec.FreezeWindow = max(rec.FreezeWindow, st.Freeze)
		}
	}
	rec.BytesRead, rec.BytesAdded = s.Stats.BytesRead, s.Stats.DataAdded
	if rt := res.Retry; rt != nil {
		rec.RetriedFiles = len(rt.Change.Queued)
		if ar.kind == history.FollowUp {
			rec.RetriedFiles = len(res.Files)
		}
		if rt.Sentence != "" {
			rec.Steps = append(rec.Steps, history.Step{Kind: "retry-queue", Name: js.queue.Path(), Status: "updated", Message: rt.Sentence})
		}
		if rt.Err != nil {
			rec.Errors = append(rec.Errors, "retry queue not updated: "+rt.Err.Error())
		}
	}
	return rec
}

func ms(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

func hookStep(h quiesce.HookResult) history.Step {
	st := history.Step{Kind: "hook", Name: string(h.Point), Status: "ok", Message: h.Command}
	if !h.OK() {
		st.Status, st.Message = "failed", h.Command+": "+h.Error
	}
	return st
}

// heldBy joins a file's reason and holder in the history, which keeps one
// reason per file.
const heldBy = ", held by "

// problemReason is the reason and the holder of a file not stored whole.
func problemReason(p archiver.Problem) string {
	r := p.Reason
	if r == "" {
		r = p.Error
	}
	if p.Holder != "" {
		r += heldBy + p.Holder
	}
	return r
}

// retrySentence is the run's words about its retry queue, "" when none.
func retrySentence(rec *history.Run) string {
	for _, s := range rec.Steps {
		if s.Kind == "retry-queue" {
			return s.Message
		}
	}
	return ""
}

func webStatus(s history.Status) string {
	switch s {
	case history.Success:
		return web.StatusOK
	case history.Partial:
		return web.StatusPartial
	}
	return web.StatusFailed
}

func runMetrics(rec *history.Run, res *run.JobResult) web.RunMetrics {
	m := web.RunMetrics{Job: rec.Job, Start: rec.Start, End: rec.End, Status: webStatus(rec.Status),
		BytesRead: rec.BytesRead, BytesAdded: rec.BytesAdded, Outcomes: outcome.Counts{},
		FreezeMs: float64(rec.FreezeWindow) / float64(time.Millisecond), QuietWaitSecs: rec.QuietWait.Seconds()}
	for o, n := range rec.Outcomes {
		if oc, err := outcome.Parse(o); err == nil {
			m.Outcomes[oc] = int64(n)
		}
	}
	if res != nil && res.Retry != nil {
		m.PendingRetries = res.Retry.Left
	}
	return m
}

// summaryLine is the log's line about a finished run.
func summaryLine(rec *history.Run, res *run.JobResult, err error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s in %s", webKind(rec.Kind), rec.Status, rec.Duration().Round(time.Millisecond))
	if rec.Snapshot != "" {
		fmt.Fprintf(&b, ", snapshot %s", rec.Snapshot[:min(8, len(rec.Snapshot))])
	}
	if res != nil && res.Backup != nil && res.Backup.Snapshot != nil {
		if s := res.Backup.Snapshot; s.Partial {
			fmt.Fprintf(&b, "; %s", run.OutcomeSentence(s.OutcomeCounts(), res.Backup.Problems))
		} else {
			b.WriteString("; every file was stored whole")
		}
	}
	if s := retrySentence(rec); s != "" {
		fmt.Fprintf(&b, "; retry queue: %s", s)
	}
	if err != nil {
		fmt.Fprintf(&b, ": %v", err)
	}
	return b.String()
}

func notifyEvent(rec *history.Run, res *run.JobResult, err error) notify.Event {
	host, _ := os.Hostname()
	ev := notify.Event{Job: rec.Job, Host: host, Kind: string(rec.Kind), Status: notify.Status(rec.Status),
		Snapshot: rec.Snapshot, Start: rec.Start, End: rec.End, Outcomes: rec.Outcomes, Errors: rec.Errors,
		Summary: summaryLine(rec, res, err)}
	for _, f := range rec.Flagged {
		ev.Flagged = append(ev.Flagged, notify.File(f))
	}
	return ev
}
