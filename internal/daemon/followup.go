package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/history"
	"github.com/stillpoint-backup/stillpoint/internal/run"
	"github.com/stillpoint-backup/stillpoint/internal/schedule"
)

// planFollowUp sets when the job's next follow-up is due: the queue's
// earliest next attempt, unless the next full run comes first (it tries
// every file). An attempt that is already due after a run that did not
// store it (the run failed, or was a follow-up that wrote nothing) is put
// one retry-after later, so a failing follow-up does not repeat at once.
// d.mu is held.
func (d *Daemon) planFollowUp(name string, js *jobState, now time.Time, failedFollowUp bool) {
	if err := js.queue.Reload(); err != nil {
		d.log.Printf("job %s: retry queue: %v", name, err)
	}
	next := js.queue.NextAttempt()
	js.followAt = time.Time{}
	if next.IsZero() {
		return
	}
	if failedFollowUp && !next.After(now) {
		next = now.Add(retryAfter(js))
	}
	if st, ok := d.sched.JobStatus(name); ok && !st.Next.IsZero() && !next.Before(st.Next) {
		return
	}
	js.followAt = next
}

func retryAfter(js *jobState) time.Duration {
	if js.job.RetryAfter > 0 {
		return js.job.RetryAfter
	}
	return 15 * time.Minute
}

// NextFollowUp is when the job's next follow-up is due; zero when none is
// planned.
func (d *Daemon) NextFollowUp(job string) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	if js := d.jobs[job]; js != nil {
		return js.followAt
	}
	return time.Time{}
}

// followUps starts each job's follow-up when it is due. Like the
// scheduler it sleeps at most MaxSleep on one timer and compares wall
// times when it wakes, so a suspend neither skips nor doubles one.
func (d *Daemon) followUps(ctx context.Context) {
	for {
		d.loopTurned.Store(time.Now().UnixNano())
		wait := d.startDueFollowUps()
		t := d.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		case <-d.pokeFollow:
			t.Stop()
		}
	}
}

// startDueFollowUps starts the follow-ups that are due and returns how
// long to sleep until the next one.
func (d *Daemon) startDueFollowUps() time.Duration {
	now := d.clock.Now()
	wait := d.opts.MaxSleep
	d.mu.Lock()
	var due []string
	for _, name := range d.names() {
		js := d.jobs[name]
		switch {
		case js.followAt.IsZero() || d.running[name] != nil:
		case js.followAt.After(now):
			wait = min(wait, js.followAt.Sub(now))
		default:
			due = append(due, name)
		}
	}
	d.mu.Unlock()
	for _, name := range due {
		_, err := d.start(name, true)
		switch {
		case err == nil:
		case errors.Is(err, schedule.ErrNotStarted):
			wait = min(wait, time.Second) // the scheduler is starting or stopping
		default:
			if !errors.Is(err, schedule.ErrRunning) {
				d.log.Printf("job %s: follow-up not started: %v", name, err)
			}
			// planned again when the run that holds the job ends
			d.mu.Lock()
			if js := d.jobs[name]; js != nil {
				js.followAt = time.Time{}
			}
			d.mu.Unlock()
		}
	}
	return wait
}

// start starts a manual run of the job (a follow-up when followUp) and
// returns its id. The run shows as running from now on, before the
// scheduler's goroutine takes it up.
func (d *Daemon) start(name string, followUp bool) (string, error) {
	ar := &activeRun{id: run.NewRunID(), kind: history.Full, trigger: string(schedule.Manual), start: d.clock.Now()}
	if followUp {
		ar.kind, ar.trigger = history.FollowUp, triggerRetry
	}
	d.mu.Lock()
	if d.jobs[name] == nil {
		d.mu.Unlock()
		return "", schedule.ErrUnknownJob
	}
	if d.running[name] != nil {
		d.mu.Unlock()
		return "", schedule.ErrRunning
	}
	d.requests[name] = ar
	d.running[name] = ar
	d.mu.Unlock()
	runNow := d.sched.RunNow
	if followUp {
		runNow = d.sched.RunNowYielding // a full run due meanwhile waits for it, not skipped
	}
	if err := runNow(name); err != nil {
		d.mu.Lock()
		if d.requests[name] == ar {
			delete(d.requests, name)
		}
		if d.running[name] == ar {
			delete(d.running, name)
		}
		d.mu.Unlock()
		return "", err
	}
	return ar.id, nil
}
