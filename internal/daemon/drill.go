package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/drill"
	"github.com/stillpoint-backup/stillpoint/internal/history"
	"github.com/stillpoint-backup/stillpoint/internal/notify"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/run"
	"github.com/stillpoint-backup/stillpoint/internal/schedule"
	"github.com/stillpoint-backup/stillpoint/internal/web"
)

// drillSuffix names a job's drill in the scheduler. A job name cannot
// hold a space, so no job is named like another job's drill.
const drillSuffix = " (drill)"

func drillEntry(job string) string { return job + drillSuffix }

// drillSchedule is the job's drill schedule, nil when it has none.
func drillSchedule(js *jobState) schedule.Schedule {
	if js.job.Drill == nil {
		return nil
	}
	return js.job.Drill.Schedule
}

// scheduleDrill brings the scheduler's entry of the job's drill in line
// with its drill.schedule:, keeping the entry's times when the schedule
// did not change. A new entry starts from the last drill in the history;
// without one the first drill comes one schedule step from now, so a new
// job is backed up before it is drilled. d.mu is held.
func (d *Daemon) scheduleDrill(name string, js *jobState) {
	entry := drillEntry(name)
	sched := drillSchedule(js)
	st, had := d.sched.JobStatus(entry)
	if sched != nil && had && st.Schedule == sched.String() {
		return
	}
	if had {
		d.sched.Remove(entry)
	}
	if sched == nil {
		return
	}
	sj := schedule.Job{Name: entry, Schedule: sched, LastStart: st.LastStart, LastSuccess: st.LastSuccess}
	if !had {
		sj.LastStart = d.clock.Now()
		if js.lastDrill != nil {
			sj.LastStart = js.lastDrill.Start
		}
	}
	if err := d.sched.Add(sj); err != nil {
		d.log.Printf("job %s: drill not scheduled: %v", name, err)
		return
	}
	d.log.Printf("job %s: drill scheduled (%s)", name, sched)
}

// runDrill is the scheduler's run of a job's drill: the job's newest
// snapshot drilled as `stillpoint drill --job` does, recorded in the
// history as kind drill, told to the metrics and, when it fails, to the
// job's channels. One drill runs at a time, and a drill waits for a run
// of its job in progress to end (it drills the snapshot that run writes).
func (d *Daemon) runDrill(ctx context.Context, t schedule.Trigger) error {
	name := strings.TrimSuffix(t.Job, drillSuffix)
	select {
	case d.drillTurn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-d.drillTurn }()
	if err := d.waitForRun(ctx, name); err != nil {
		return err
	}
	d.mu.Lock()
	js := d.jobs[name]
	if js == nil {
		d.mu.Unlock()
		return fmt.Errorf("job %s is no longer loaded", name)
	}
	ar := &activeRun{id: run.NewRunID(), kind: history.Drill, trigger: string(t.Reason), start: d.clock.Now()}
	d.drilling[name] = ar
	d.mu.Unlock()
	d.metrics.RunStarted(name)
	d.updateStatus()
	d.log.Printf("job %s: drill started (%s, run %s)", name, ar.trigger, ar.id)

	release := d.inhibit(name)
	s, res, err := d.drillFn(ctx, js)
	release()
	rec := d.drillRecord(js, ar, s, res, err)
	recCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if id, herr := d.hist.Record(recCtx, rec); herr != nil {
		d.log.Printf("job %s: the drill was not recorded in the history: %v", name, herr)
	} else {
		rec.ID = id
	}
	d.metrics.DrillFinished(web.DrillMetrics{Job: name, Start: rec.Start, End: rec.End, Passed: rec.Status == history.Success})
	summary := drillSummary(rec, s, res)
	d.log.Printf("job %s: %s", name, summary)
	d.mu.Lock()
	if rec.ID != 0 {
		d.finished[ar.id] = rec.ID
	}
	if d.drilling[name] == ar {
		delete(d.drilling, name)
	}
	if cur := d.jobs[name]; cur != nil {
		cur.lastDrill = rec
	}
	d.mu.Unlock()
	d.updateStatus()
	host, _ := os.Hostname()
	ev := notify.Event{Job: name, Host: host, Kind: string(history.Drill), Status: notify.Status(rec.Status), Snapshot: rec.Snapshot,
		Start: rec.Start, End: rec.End, Errors: rec.Errors, Summary: summary}
	nctx, ncancel := context.WithTimeout(context.WithoutCancel(ctx), d.opts.NotifyTimeout)
	defer ncancel()
	d.logNotify(name, js.notify.Send(nctx, ev))
	if rec.Status != history.Success {
		return errors.New(summary)
	}
	return nil
}

// waitForRun returns once no run of the job is in progress.
func (d *Daemon) waitForRun(ctx context.Context, name string) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		d.mu.Lock()
		busy := d.running[name] != nil
		d.mu.Unlock()
		if !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// drillNewest drills the job's newest snapshot in its repository.
func drillNewest(ctx context.Context, js *jobState) (*repo.Snapshot, *repo.DrillResult, error) {
	r, err := run.Open(ctx, js.access)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	snaps, _, err := r.Snapshots(ctx)
	if err != nil {
		return nil, nil, err
	}
	s, err := drill.JobSnapshot(snaps, js.job)
	if err != nil {
		return nil, nil, err
	}
	opts := drill.FromJob(js.job)
	opts.Host, _ = os.Hostname()
	opts.CursorFile = drill.CursorFile(run.CacheDir(), r.Config().ID)
	res, err := drill.RunAndStore(ctx, r, s, opts)
	return s, res, err
}

// Steps of a drill in the history: one per check (check, restore, each
// verifier).
const stepDrill = "drill"

// drillRecord is the history's record of a drill: success when every
// check passed, failed when one did not or the drill could not run.
func (d *Daemon) drillRecord(js *jobState, ar *activeRun, s *repo.Snapshot, res *repo.DrillResult, err error) *history.Run {
	rec := &history.Run{Job: js.job.Name, Kind: history.Drill, Trigger: ar.trigger, Start: ar.start, End: d.clock.Now(),
		Status: history.Failed, Outcomes: map[string]int{}}
	if s != nil {
		rec.Snapshot = s.ID.String()
	}
	if res == nil {
		if err != nil {
			rec.Errors = append(rec.Errors, err.Error())
		}
		return rec
	}
	if res.OK {
		rec.Status = history.Success
	}
	rec.BytesRead = res.Bytes
	for _, st := range res.Steps {
		step := history.Step{Kind: stepDrill, Name: st.Name, Status: "ok", Message: st.Message}
		if st.Path != "" {
			step.Message = st.Path + ": " + st.Message
		}
		if !st.OK {
			step.Status = "failed"
			what := st.Name
			if st.Path != "" {
				what += " " + st.Path + " (restored as " + st.Restored + ")"
			}
			rec.Errors = append(rec.Errors, what+": "+st.Message)
		}
		rec.Steps = append(rec.Steps, step)
	}
	if err != nil {
		rec.Errors = append(rec.Errors, "after the drill: "+err.Error())
	}
	return rec
}

// drillSummary is the log's and the notifications' line about a drill.
func drillSummary(rec *history.Run, s *repo.Snapshot, res *repo.DrillResult) string {
	took := rec.Duration().Round(time.Millisecond)
	switch {
	case res == nil && len(rec.Errors) > 0:
		return fmt.Sprintf("drill failed in %s: %s", took, rec.Errors[0])
	case res == nil:
		return fmt.Sprintf("drill failed in %s", took)
	case res.OK:
		return fmt.Sprintf("drill of snapshot %s at level %s passed in %s: %d checks", s.ID.Short(), res.Level, took, len(res.Steps))
	}
	failed := 0
	for _, st := range res.Steps {
		if !st.OK {
			failed++
		}
	}
	return fmt.Sprintf("drill of snapshot %s at level %s failed in %s: %d of %d checks; %s", s.ID.Short(), res.Level, took, failed, len(res.Steps), rec.Errors[0])
}

// lastOf is the job's newest recorded run that is a drill (drills) or
// not; ErrNotFound when there is none. The history lists every kind;
// drills are few beside backups, so the pages grow only while looking
// for the one that is rare.
func (d *Daemon) lastOf(ctx context.Context, job string, drills bool) (*history.Run, error) {
	for _, limit := range []int{20, 500, 0} {
		runs, err := d.hist.List(ctx, job, limit)
		if err != nil {
			return nil, err
		}
		for _, r := range runs {
			if (r.Kind == history.Drill) == drills {
				return r, nil
			}
		}
		if limit == 0 || len(runs) < limit {
			break
		}
	}
	return nil, fmt.Errorf("%w: job %s", history.ErrNotFound, job)
}
