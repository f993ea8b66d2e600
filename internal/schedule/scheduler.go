package schedule

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"
)

// Job is one scheduled job as the scheduler sees it.
type Job struct {
	Name     string
	Schedule Schedule
	// Jitter delays each run by a random duration in [0, Jitter), so
	// machines with the same schedule do not all start at once.
	Jitter time.Duration
	// LastStart is when the job's latest run started, from the history;
	// zero when it never ran. A scheduled time after it that has already
	// passed runs once, at start-up.
	LastStart time.Time
	// LastSuccess is when the job's latest successful run started; zero
	// when none did. It decides whether the job is overdue.
	LastSuccess time.Time
}

// Reason says why a run started.
type Reason string

// Reasons.
const (
	Scheduled Reason = "scheduled"
	CatchUp   Reason = "catch-up" // its time passed while the daemon was down or the machine asleep
	Manual    Reason = "manual"   // RunNow
)

// Trigger is what the scheduler hands the run function.
type Trigger struct {
	Job string
	// Slot is the scheduled time the run is for; zero for a manual run.
	Slot   time.Time
	Reason Reason
}

// RunFunc runs a job once. It returns nil when the run counts as a
// success. It must return soon after ctx is cancelled.
type RunFunc func(ctx context.Context, t Trigger) error

// EventKind names what happened.
type EventKind string

// Event kinds.
const (
	// EventDue: a scheduled time (plus jitter) was reached; a Started or an
	// Overlap event follows.
	EventDue EventKind = "due"
	// EventStarted: a run began.
	EventStarted EventKind = "started"
	// EventFinished: a run returned; Err is its error.
	EventFinished EventKind = "finished"
	// EventOverlap: a scheduled time came while the job's previous run was
	// still going; that time is skipped, not queued.
	EventOverlap EventKind = "overlap"
	// EventDeferred: a scheduled time came while a run started by
	// RunNowYielding was going; the scheduled run starts when it ends.
	EventDeferred EventKind = "deferred"
	// EventMissed: a scheduled time passed without a run (the daemon was
	// down, the machine asleep, the clock jumped forward); one run starts
	// for all such times.
	EventMissed EventKind = "missed"
)

// Event is one thing the scheduler did, for logs and the history.
type Event struct {
	Kind EventKind
	Job  string
	// Time is the wall time of the event.
	Time time.Time
	// Slot is the scheduled time concerned (the earliest missed one for
	// EventMissed); zero for a manual run.
	Slot   time.Time
	Reason Reason        // EventStarted, EventFinished
	Late   time.Duration // EventMissed: how long after Slot the run starts
	Err    error         // EventFinished
	// Next is the job's next scheduled time after this event (EventDue,
	// EventOverlap, EventMissed).
	Next time.Time
}

// Options configure a Scheduler; the zero value is usable.
type Options struct {
	// Clock defaults to Real.
	Clock Clock
	// Rand draws the jitter; nil uses a randomly seeded source.
	Rand *rand.Rand
	// OnEvent receives every event, one at a time; it must not block for
	// long. It may call the Scheduler's methods.
	OnEvent func(Event)
	// MaxSleep bounds one timer, so a suspend or a change of the wall
	// clock is noticed within it; default DefaultMaxSleep.
	MaxSleep time.Duration
	// Grace is how late a run may start before it is reported missed;
	// default DefaultGrace.
	Grace time.Duration
}

// Defaults of Options.
const (
	DefaultMaxSleep = time.Minute
	DefaultGrace    = time.Minute
)

// Errors of RunNow and Add.
var (
	ErrUnknownJob = errors.New("no such job")
	ErrRunning    = errors.New("the job is running")
	ErrNotStarted = errors.New("the scheduler is not running")
)

// JobStatus is a job's state, for the status page.
type JobStatus struct {
	Name     string
	Schedule string
	Jitter   time.Duration
	// Next is the next scheduled time; NextRun adds this time's jitter.
	Next, NextRun time.Time
	Running       bool
	RunningSince  time.Time // when Running
	LastStart     time.Time
	LastSuccess   time.Time
	LastError     error // of the latest run that finished; nil if it succeeded
	// Overdue: see the function Overdue.
	Overdue bool
}

// Scheduler starts jobs at their scheduled times, one run per job at a
// time.
type Scheduler struct {
	run      RunFunc
	clock    Clock
	rnd      *rand.Rand
	onEvent  func(Event)
	maxSleep time.Duration
	grace    time.Duration

	emitMu sync.Mutex // one OnEvent call at a time
	mu     sync.Mutex
	jobs   map[string]*entry
	ctx    context.Context // of Run; nil when Run is not running
	since  time.Time       // when Run started: the base of Overdue for a job that never succeeded
	wg     sync.WaitGroup
	poke   chan struct{}
}

type entry struct {
	Job
	next, fireAt time.Time
	running      bool
	runSince     time.Time
	lastErr      error
	// yielding: the run in progress came from RunNowYielding; deferred is
	// the scheduled run waiting for its end.
	yielding bool
	deferred *Trigger
}

// New returns a scheduler that calls run for each job's runs.
func New(run RunFunc, o Options) *Scheduler {
	s := &Scheduler{run: run, clock: o.Clock, rnd: o.Rand, onEvent: o.OnEvent, maxSleep: o.MaxSleep, grace: o.Grace,
		jobs: map[string]*entry{}, poke: make(chan struct{}, 1)}
	if s.clock == nil {
		s.clock = Real{}
	}
	if s.maxSleep <= 0 {
		s.maxSleep = DefaultMaxSleep
	}
	if s.grace <= 0 {
		s.grace = DefaultGrace
	}
	s.since = s.clock.Now()
	return s
}

// Add schedules a job. The first run is the first scheduled time after
// LastStart; a job that never ran runs at its first cron time, or, with
// an interval, right away.
func (s *Scheduler) Add(j Job) error {
	if j.Name == "" {
		return errors.New("schedule: a job needs a name")
	}
	if j.Schedule == nil {
		return fmt.Errorf("schedule: job %s has no schedule", j.Name)
	}
	now := s.clock.Now()
	if j.Jitter < 0 || (j.Jitter > 0 && j.Jitter >= Shortest(j.Schedule, now)) {
		return fmt.Errorf("schedule: job %s: the jitter %v is not below the shortest time between its runs (%v)", j.Name, j.Jitter, Shortest(j.Schedule, now))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.jobs[j.Name]; dup {
		return fmt.Errorf("schedule: two jobs are named %s", j.Name)
	}
	e := &entry{Job: j}
	_, interval := j.Schedule.(Interval)
	switch {
	case !j.LastStart.IsZero():
		s.setNext(e, j.Schedule.Next(j.LastStart))
	case interval:
		s.setNext(e, now)
	default:
		s.setNext(e, j.Schedule.Next(now))
	}
	s.jobs[j.Name] = e
	select {
	case s.poke <- struct{}{}:
	default:
	}
	return nil
}

// Remove unschedules a job; a run of it in progress goes on.
func (s *Scheduler) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.jobs, name)
}

func (s *Scheduler) setNext(e *entry, t time.Time) {
	e.next, e.fireAt = t, t
	if e.Jitter > 0 && !t.IsZero() {
		var n int64
		if s.rnd != nil {
			n = s.rnd.Int64N(int64(e.Jitter))
		} else {
			n = rand.Int64N(int64(e.Jitter))
		}
		e.fireAt = t.Add(time.Duration(n))
	}
}

// Run starts the jobs' runs until ctx is cancelled, then waits for the
// runs in progress (which see the same cancelled ctx) and returns
// ctx.Err().
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ctx != nil {
		s.mu.Unlock()
		return errors.New("schedule: Run called twice")
	}
	s.ctx = ctx
	s.since = s.clock.Now()
	s.mu.Unlock()
	// the first tick sees every job added so far: their pokes are spent
	select {
	case <-s.poke:
	default:
	}
	for {
		t := s.clock.NewTimer(s.tick())
		select {
		case <-ctx.Done():
			t.Stop()
			s.mu.Lock()
			s.ctx = nil
			s.mu.Unlock()
			s.wg.Wait()
			return ctx.Err()
		case <-t.C():
		case <-s.poke:
			t.Stop()
		}
	}
}

type pending struct {
	e *entry
	t Trigger
}

// tick starts what is due and returns how long to sleep.
func (s *Scheduler) tick() time.Duration {
	now := s.clock.Now()
	var events []Event
	var starts []pending
	s.mu.Lock()
	names := make([]string, 0, len(s.jobs))
	for n := range s.jobs {
		names = append(names, n)
	}
	sort.Strings(names)
	sleep := s.maxSleep
	for _, n := range names {
		e := s.jobs[n]
		// After the wall clock went back, a time already run is not run
		// again, unless the clock went back so far that waiting for it
		// would leave the job idle for more than two of its periods.
		if g := e.Schedule.Next(e.Schedule.Next(now)); !g.IsZero() && g.Before(e.next) {
			s.setNext(e, g)
		}
		if e.next.IsZero() { // a cron schedule with no more dates
			continue
		}
		if e.fireAt.After(now) {
			sleep = min(sleep, e.fireAt.Sub(now))
			continue
		}
		slot := e.next
		following := e.Schedule.Next(slot)
		skipped := !following.After(now)
		if skipped {
			following = e.Schedule.Next(now)
		}
		events = append(events, Event{Kind: EventDue, Job: n, Time: now, Slot: slot, Next: following})
		switch {
		case e.running && e.yielding:
			if e.deferred == nil { // one run for every time that came meanwhile
				e.deferred = &Trigger{Job: n, Slot: slot, Reason: Scheduled}
			}
			events = append(events, Event{Kind: EventDeferred, Job: n, Time: now, Slot: slot, Next: following})
		case e.running:
			events = append(events, Event{Kind: EventOverlap, Job: n, Time: now, Slot: slot, Next: following})
		default:
			reason := Scheduled
			if skipped || now.Sub(e.fireAt) > s.grace {
				reason = CatchUp
				events = append(events, Event{Kind: EventMissed, Job: n, Time: now, Slot: slot, Late: now.Sub(slot), Next: following})
			}
			if st, ok := s.begin(e, Trigger{Job: n, Slot: slot, Reason: reason}, now, false); ok {
				starts = append(starts, st)
				events = append(events, Event{Kind: EventStarted, Job: n, Time: now, Slot: slot, Reason: reason})
			}
		}
		s.setNext(e, following)
		sleep = min(sleep, max(0, e.fireAt.Sub(now)))
	}
	s.mu.Unlock()
	s.emit(events...)
	for _, st := range starts {
		go s.execute(st)
	}
	return sleep
}

// begin marks e running; s.mu is held.
func (s *Scheduler) begin(e *entry, t Trigger, now time.Time, yielding bool) (pending, bool) {
	if s.ctx == nil || s.ctx.Err() != nil {
		return pending{}, false
	}
	e.running, e.runSince, e.LastStart, e.yielding = true, now, now, yielding
	s.wg.Add(1)
	return pending{e, t}, true
}

func (s *Scheduler) execute(st pending) {
	defer s.wg.Done()
	s.mu.Lock()
	ctx := s.ctx
	s.mu.Unlock()
	if ctx == nil {
		ctx = canceled()
	}
	err := s.call(ctx, st.t)
	now := s.clock.Now()
	s.mu.Lock()
	e := st.e
	e.running, e.yielding, e.lastErr = false, false, err
	if err == nil {
		e.LastSuccess = e.runSince
	}
	var next pending
	started := false
	if d := e.deferred; d != nil {
		e.deferred = nil
		if s.jobs[d.Job] == e { // not removed meanwhile
			next, started = s.begin(e, *d, now, false)
		}
	}
	s.mu.Unlock()
	s.emit(Event{Kind: EventFinished, Job: st.t.Job, Time: now, Slot: st.t.Slot, Reason: st.t.Reason, Err: err})
	if started {
		s.emit(Event{Kind: EventStarted, Job: next.t.Job, Time: now, Slot: next.t.Slot, Reason: next.t.Reason})
		go s.execute(next) // begin counted it in s.wg
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// call runs the job, turning a panic into an error so one job cannot stop
// the scheduler.
func (s *Scheduler) call(ctx context.Context, t Trigger) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the run of %s panicked: %v", t.Job, r)
		}
	}()
	return s.run(ctx, t)
}

func (s *Scheduler) emit(events ...Event) {
	if s.onEvent == nil || len(events) == 0 {
		return
	}
	s.emitMu.Lock()
	defer s.emitMu.Unlock()
	for _, ev := range events {
		s.onEvent(ev)
	}
}

// RunNow starts a run of the job now, outside its schedule, which stays
// as it was. It returns ErrRunning when a run of the job is in progress.
func (s *Scheduler) RunNow(name string) error { return s.runNow(name, false) }

// RunNowYielding is RunNow for a run that does not take a scheduled run's
// place (a short retry of a few files): a scheduled time that comes while
// it goes on is not skipped, that run starts when it ends.
func (s *Scheduler) RunNowYielding(name string) error { return s.runNow(name, true) }

func (s *Scheduler) runNow(name string, yielding bool) error {
	now := s.clock.Now()
	s.mu.Lock()
	e, ok := s.jobs[name]
	switch {
	case !ok:
		s.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrUnknownJob, name)
	case s.ctx == nil:
		s.mu.Unlock()
		return ErrNotStarted
	case e.running:
		s.mu.Unlock()
		return fmt.Errorf("%s: %w (since %s)", name, ErrRunning, e.runSince.Format(time.DateTime))
	}
	t := Trigger{Job: name, Reason: Manual}
	st, ok := s.begin(e, t, now, yielding)
	s.mu.Unlock()
	if !ok {
		return ErrNotStarted
	}
	s.emit(Event{Kind: EventStarted, Job: name, Time: now, Reason: Manual})
	go s.execute(st)
	return nil
}

// Status returns every job's state, by name.
func (s *Scheduler) Status() []JobStatus {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]JobStatus, 0, len(s.jobs))
	for _, e := range s.jobs {
		out = append(out, s.status(e, now))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// JobStatus returns one job's state.
func (s *Scheduler) JobStatus(name string) (JobStatus, bool) {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.jobs[name]
	if !ok {
		return JobStatus{}, false
	}
	return s.status(e, now), true
}

func (s *Scheduler) status(e *entry, now time.Time) JobStatus {
	st := JobStatus{Name: e.Name, Schedule: e.Schedule.String(), Jitter: e.Jitter, Next: e.next, NextRun: e.fireAt,
		Running: e.running, LastStart: e.LastStart, LastSuccess: e.LastSuccess, LastError: e.lastErr}
	if e.running {
		st.RunningSince = e.runSince
	}
	since := e.LastSuccess
	if since.IsZero() {
		since = s.since
	}
	st.Overdue = Overdue(e.Schedule, e.Jitter, since, now)
	return st
}

// Overdue tells whether a job whose latest success started at since (or,
// if it never succeeded, the scheduler started then) should have
// succeeded again by now: true once the second scheduled time after since,
// plus the jitter, has passed. One failed or skipped run is not overdue;
// two are.
func Overdue(s Schedule, jitter time.Duration, since, now time.Time) bool {
	second := s.Next(s.Next(since))
	return !second.IsZero() && now.After(second.Add(jitter))
}
