package daemon

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/history"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/run"
	"github.com/stillpoint-backup/stillpoint/internal/schedule"
	"github.com/stillpoint-backup/stillpoint/internal/web"
)

// source is the daemon as the status pages see it.
type source struct{ d *Daemon }

var _ web.Source = source{}

// Jobs is every loaded job with its schedule, runs and retry queue, by name.
func (src source) Jobs(ctx context.Context) ([]web.JobStatus, error) {
	d := src.d
	type snap struct {
		js        *jobState
		run       *activeRun
		lastDrill *history.Run
	}
	d.mu.Lock()
	names := d.names()
	snaps := make([]snap, len(names))
	for i, n := range names {
		snaps[i] = snap{d.jobs[n], d.running[n], d.jobs[n].lastDrill}
	}
	d.mu.Unlock()
	out := make([]web.JobStatus, 0, len(names))
	for i, name := range names {
		s := snaps[i]
		st, _ := d.sched.JobStatus(name)
		j := web.JobStatus{Name: name, Schedule: st.Schedule, Repository: s.js.access.Location(),
			NextRun: st.NextRun, Overdue: st.Overdue, Pending: []web.PendingRetry{}}
		for _, src := range s.js.job.Sources {
			j.Paths = append(j.Paths, src.Path)
		}
		if st.Overdue {
			if st.LastSuccess.IsZero() {
				j.OverdueReason = "no run has succeeded since the daemon started"
			} else {
				j.OverdueReason = "no run has succeeded since " + st.LastSuccess.Local().Format(time.DateTime)
			}
		}
		if last, err := d.lastOf(ctx, name, false); err == nil {
			rs := runSummary(last)
			j.LastRun = &rs
		} else if !errors.Is(err, history.ErrNotFound) {
			return nil, err
		}
		if ds, ok := d.sched.JobStatus(drillEntry(name)); ok {
			j.DrillSchedule, j.NextDrill = ds.Schedule, ds.NextRun
		}
		if s.lastDrill != nil {
			rs := runSummary(s.lastDrill)
			j.LastDrill = &rs
		}
		if ok, err := d.hist.LastSuccess(ctx, name); err == nil {
			j.LastSuccess = ok.End
		}
		if s.run != nil {
			rs := activeSummary(name, s.run)
			j.Running = &rs
		}
		for _, e := range s.js.queue.Entries() {
			j.Pending = append(j.Pending, web.PendingRetry{Path: e.Path, Outcome: e.Outcome, Reason: e.Reason,
				Attempts: e.Attempts, NextAttempt: e.Next})
		}
		out = append(out, j)
	}
	return out, nil
}

// Runs are the job's runs, the one in progress first, then the history's.
func (src source) Runs(ctx context.Context, job string, limit int) ([]web.RunSummary, error) {
	d := src.d
	d.mu.Lock()
	_, loaded := d.jobs[job]
	active := []*activeRun{d.running[job], d.drilling[job]}
	d.mu.Unlock()
	var out []web.RunSummary
	for _, ar := range active {
		if ar != nil && limit > 0 {
			out = append(out, activeSummary(job, ar))
			limit--
		}
	}
	runs, err := d.hist.List(ctx, job, max(limit, 1))
	if err != nil {
		return nil, err
	}
	if !loaded && len(runs) == 0 {
		return nil, fmt.Errorf("no job %q: %w", job, web.ErrNotFound)
	}
	for _, r := range runs {
		if limit <= 0 {
			break
		}
		out = append(out, runSummary(r))
		limit--
	}
	return out, nil
}

// Run is one run: the one in progress with the id, or a recorded one
// (by its history id, or by the id RunNow gave).
func (src source) Run(ctx context.Context, id string) (*web.RunDetail, error) {
	d := src.d
	d.mu.Lock()
	for _, active := range []map[string]*activeRun{d.running, d.drilling} {
		for job, ar := range active {
			if ar.id == id {
				d.mu.Unlock()
				return &web.RunDetail{RunSummary: activeSummary(job, ar), Flagged: []web.FlaggedFile{},
					Hooks: []web.HookResult{}, Writers: []web.WriterInfo{}, Errors: []string{}, Checks: []web.DrillCheck{}}, nil
			}
		}
	}
	hid, ok := d.finished[id]
	d.mu.Unlock()
	if !ok {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("no run %q: %w", id, web.ErrNotFound)
		}
		hid = n
	}
	r, err := d.hist.Get(ctx, hid)
	if errors.Is(err, history.ErrNotFound) {
		return nil, fmt.Errorf("no run %q: %w", id, web.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return runDetail(r), nil
}

// RunNow starts a full run of the job.
func (src source) RunNow(_ context.Context, job string) (string, error) {
	d := src.d
	id, err := d.start(job, false)
	switch {
	case errors.Is(err, schedule.ErrUnknownJob):
		return "", fmt.Errorf("no job %q: %w", job, web.ErrNotFound)
	case errors.Is(err, schedule.ErrRunning):
		return "", fmt.Errorf("job %s: %w", job, web.ErrBusy)
	case err != nil:
		return "", err
	}
	d.log.Printf("job %s: run %s asked for on the status page", job, id)
	return id, nil
}

// Repositories are the jobs' repositories, each opened once and kept for
// browsing. One that cannot be opened (not created yet, say) is an error
// beside the others.
func (src source) Repositories(ctx context.Context) ([]web.Repository, error) {
	d := src.d
	d.mu.Lock()
	accesses := map[string]run.Access{}
	for _, js := range d.jobs {
		accesses[js.access.Location()] = js.access
	}
	d.mu.Unlock()
	locs := make([]string, 0, len(accesses))
	for l := range accesses {
		locs = append(locs, l)
	}
	sort.Strings(locs)
	var out []web.Repository
	var errs []error
	for _, l := range locs {
		d.mu.Lock()
		r, ok := d.repos[l]
		d.mu.Unlock()
		if !ok {
			opened, err := run.Open(ctx, accesses[l])
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", l, err))
				continue
			}
			r = web.Repository{Name: l, Repo: opened}
			d.mu.Lock()
			d.repos[l] = r
			d.mu.Unlock()
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

func webKind(k history.Kind) string {
	if k == history.Full {
		return "backup"
	}
	return string(k)
}

func activeSummary(job string, ar *activeRun) web.RunSummary {
	return web.RunSummary{ID: ar.id, Job: job, Kind: webKind(ar.kind), Trigger: ar.trigger, Start: ar.start,
		Status: web.StatusRunning, Outcomes: outcome.Counts{}}
}

func runSummary(r *history.Run) web.RunSummary {
	s := web.RunSummary{ID: strconv.FormatInt(r.ID, 10), Job: r.Job, Kind: webKind(r.Kind), Trigger: r.Trigger,
		Start: r.Start, End: r.End, Status: webStatus(r.Status), Snapshot: r.Snapshot, Outcomes: outcome.Counts{},
		BytesRead: r.BytesRead, BytesAdded: r.BytesAdded}
	for o, n := range r.Outcomes {
		if oc, err := outcome.Parse(o); err == nil {
			s.Outcomes[oc] = int64(n)
		}
	}
	if len(r.Errors) > 0 {
		s.Error = r.Errors[0]
	}
	s.Retry = retrySentence(r)
	return s
}

func runDetail(r *history.Run) *web.RunDetail {
	d := &web.RunDetail{RunSummary: runSummary(r), Flagged: []web.FlaggedFile{}, Hooks: []web.HookResult{},
		Writers: []web.WriterInfo{}, FreezeMs: float64(r.FreezeWindow) / float64(time.Millisecond),
		QuietWaitSecs: r.QuietWait.Seconds(), Errors: append([]string{}, r.Errors...), Checks: []web.DrillCheck{}}
	for _, f := range r.Flagged {
		oc, _ := outcome.Parse(f.Outcome)
		reason, holder, _ := strings.Cut(f.Reason, heldBy)
		d.Flagged = append(d.Flagged, web.FlaggedFile{Path: f.Path, Outcome: oc, Reason: reason, Holder: holder,
			Queued: oc == outcome.Failed || oc == outcome.SkippedOpen})
	}
	for _, s := range r.Steps {
		switch s.Kind {
		case "hook":
			d.Hooks = append(d.Hooks, web.HookResult{Name: s.Name, Command: s.Message, OK: s.Status == "ok"})
		case "writer":
			d.Writers = append(d.Writers, web.WriterInfo{Name: s.Name, HeldMs: float64(s.Freeze) / float64(time.Millisecond),
				Frozen: s.Status == "frozen", Error: s.Message})
		case stepDrill:
			d.Checks = append(d.Checks, web.DrillCheck{Name: s.Name, OK: s.Status == "ok", Message: s.Message})
		}
	}
	return d
}
