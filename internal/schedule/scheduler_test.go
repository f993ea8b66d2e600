package schedule

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// harness runs a Scheduler on a fake clock and records its events.
type harness struct {
	t      *testing.T
	clock  *Fake
	s      *Scheduler
	mu     sync.Mutex
	events []Event
	got    chan Event
	// block, when set, makes runs of that job wait for release.
	block   map[string]chan struct{}
	runErr  error
	cancel  context.CancelFunc
	stopped chan struct{}
}

var start = time.Date(2026, 5, 6, 10, 30, 0, 0, time.UTC)

func newHarness(t *testing.T, seed uint64) *harness {
	h := &harness{t: t, clock: NewFake(start), got: make(chan Event, 1000), block: map[string]chan struct{}{}}
	h.s = New(func(ctx context.Context, tr Trigger) error {
		h.mu.Lock()
		b, err := h.block[tr.Job], h.runErr
		h.mu.Unlock()
		if b != nil {
			select {
			case <-b:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return err
	}, Options{Clock: h.clock, Rand: rand.New(rand.NewPCG(seed, 1)), OnEvent: func(e Event) {
		h.mu.Lock()
		h.events = append(h.events, e)
		h.mu.Unlock()
		h.got <- e
	}})
	return h
}

func (h *harness) add(j Job) {
	h.t.Helper()
	if j.Schedule == nil {
		h.t.Fatal("no schedule")
	}
	if err := h.s.Add(j); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) run() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.stopped = cancel, make(chan struct{})
	go func() {
		defer close(h.stopped)
		if err := h.s.Run(ctx); !errors.Is(err, context.Canceled) {
			h.t.Errorf("Run: %v", err)
		}
	}()
	h.settle()
	h.t.Cleanup(func() {
		h.cancel()
		<-h.stopped
	})
}

// settle waits until the scheduler sleeps on a timer again, with every
// run it started finished.
func (h *harness) settle() {
	h.t.Helper()
	if !h.clock.WaitTimers(1, 5*time.Second) {
		h.t.Fatal("the scheduler does not wait on a timer")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.mu.Lock()
		open := 0
		for _, e := range h.events {
			if e.Kind == EventStarted {
				open++
			}
			if e.Kind == EventFinished {
				open--
			}
		}
		blocked := len(h.block)
		h.mu.Unlock()
		if open <= blocked {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatal("runs do not finish")
		}
		time.Sleep(time.Millisecond)
	}
}

// advance lets d pass, waking the scheduler at each of its timers.
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	end := h.clock.Now().Add(d)
	for {
		left := end.Sub(h.clock.Now())
		if left <= 0 {
			return
		}
		step, ok := h.clock.Until()
		if !ok && h.clock.WaitTimers(1, 5*time.Second) { // between a stop and the next timer
			step, ok = h.clock.Until()
		}
		if !ok {
			h.t.Fatal("no timer")
		}
		h.clock.Advance(min(step, left))
		h.settle()
	}
}

func (h *harness) of(kind EventKind) []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Event
	for _, e := range h.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

func (h *harness) startTimes() []time.Time {
	var out []time.Time
	for _, e := range h.of(EventStarted) {
		out = append(out, e.Time)
	}
	return out
}

func (h *harness) wantStarts(want ...time.Time) {
	h.t.Helper()
	got := h.startTimes()
	if len(got) != len(want) {
		h.t.Fatalf("runs started at %v, want %v", got, want)
	}
	for i := range want {
		if !got[i].Equal(want[i]) {
			h.t.Fatalf("runs started at %v, want %v", got, want)
		}
	}
}

func must(s Schedule, err error) Schedule {
	if err != nil {
		panic(err)
	}
	return s
}

func at(h, m int) time.Time { return time.Date(2026, 5, 6, h, m, 0, 0, time.UTC) }

func TestCronRunsAtItsTimes(t *testing.T) {
	h := newHarness(t, 1)
	h.add(Job{Name: "db", Schedule: must(Parse("CRON_TZ=UTC 0 * * * *"))})
	h.run()
	if st, _ := h.s.JobStatus("db"); !st.Next.Equal(at(11, 0)) || !st.NextRun.Equal(at(11, 0)) {
		t.Fatalf("next run %v / %v, want 11:00", st.Next, st.NextRun)
	}
	h.advance(2*time.Hour + 10*time.Minute) // to 12:40
	h.wantStarts(at(11, 0), at(12, 0))
	for _, e := range h.of(EventStarted) {
		if e.Reason != Scheduled || !e.Slot.Equal(e.Time) {
			t.Errorf("started %+v", e)
		}
	}
	if n := len(h.of(EventFinished)); n != 2 {
		t.Errorf("%d runs finished, want 2", n)
	}
	if m := h.of(EventMissed); len(m) != 0 {
		t.Errorf("missed: %+v", m)
	}
	st, _ := h.s.JobStatus("db")
	if !st.Next.Equal(at(13, 0)) || !st.LastSuccess.Equal(at(12, 0)) || st.Running || st.Overdue {
		t.Errorf("status %+v", st)
	}
}

func TestIntervalRunsAtStartThenEvery(t *testing.T) {
	h := newHarness(t, 1)
	h.add(Job{Name: "docs", Schedule: must(Parse("every 10m"))})
	h.run()
	h.advance(25 * time.Minute)
	h.wantStarts(at(10, 30), at(10, 40), at(10, 50))

	// with a history the interval counts from the last start
	h2 := newHarness(t, 1)
	h2.add(Job{Name: "docs", Schedule: must(Parse("every 10m")), LastStart: at(10, 25)})
	h2.run()
	h2.advance(10 * time.Minute)
	h2.wantStarts(at(10, 35))
}

func TestJitterBounds(t *testing.T) {
	h := newHarness(t, 42)
	jitter := 10 * time.Minute
	h.add(Job{Name: "db", Schedule: must(Parse("CRON_TZ=UTC 0 * * * *")), Jitter: jitter})
	h.run()
	h.advance(48 * time.Hour)
	starts := h.of(EventStarted)
	if len(starts) != 48 {
		t.Fatalf("%d runs in 48 hours, want 48", len(starts))
	}
	offsets := map[time.Duration]bool{}
	for _, e := range starts {
		off := e.Time.Sub(e.Slot)
		if off < 0 || off >= jitter || e.Slot.Minute() != 0 {
			t.Errorf("run for %v started at %v: offset %v outside [0, %v)", e.Slot, e.Time, off, jitter)
		}
		offsets[off] = true
	}
	if len(offsets) < 40 {
		t.Errorf("only %d different offsets in 48 runs: the jitter is not random", len(offsets))
	}
	if len(h.of(EventMissed)) != 0 || len(h.of(EventOverlap)) != 0 {
		t.Errorf("jitter made runs late: %v", h.of(EventMissed))
	}
	// the offsets do not accumulate: the slots stay on the hour
	if last := starts[47].Slot; !last.Equal(start.Truncate(time.Hour).Add(48 * time.Hour)) {
		t.Errorf("last slot %v", last)
	}

	if err := h.s.Add(Job{Name: "x", Schedule: must(Parse("every 1h")), Jitter: time.Hour}); err == nil {
		t.Error("a jitter as long as the interval is accepted")
	}
}

func TestOverlapIsReportedNotQueued(t *testing.T) {
	h := newHarness(t, 1)
	release := make(chan struct{})
	h.block["slow"] = release
	h.add(Job{Name: "slow", Schedule: must(Parse("every 10m"))})
	h.run()
	h.advance(25 * time.Minute) // the 10:30 run goes on past 10:40 and 10:50
	h.wantStarts(at(10, 30))
	over := h.of(EventOverlap)
	if len(over) != 2 || !over[0].Slot.Equal(at(10, 40)) || !over[1].Slot.Equal(at(10, 50)) {
		t.Fatalf("overlaps %+v, want at 10:40 and 10:50", over)
	}
	if err := h.s.RunNow("slow"); !errors.Is(err, ErrRunning) {
		t.Errorf("RunNow during a run: %v", err)
	}
	st, _ := h.s.JobStatus("slow")
	if !st.Running || !st.RunningSince.Equal(at(10, 30)) {
		t.Errorf("status %+v", st)
	}
	h.mu.Lock()
	delete(h.block, "slow")
	h.mu.Unlock()
	close(release)
	<-waitKind(t, h, EventFinished)
	h.advance(10 * time.Minute) // 11:05
	h.wantStarts(at(10, 30), at(11, 0))
}

// A scheduled time that comes during a yielding run (a follow-up) is not
// skipped: one scheduled run, for the earliest such time, starts when the
// yielding run ends.
func TestScheduledRunWaitsForAYieldingRun(t *testing.T) {
	h := newHarness(t, 1)
	release := make(chan struct{})
	h.add(Job{Name: "mail", Schedule: must(Parse("every 10m"))})
	h.run()
	h.wantStarts(at(10, 30))
	h.mu.Lock()
	h.block["mail"] = release
	h.mu.Unlock()
	if err := h.s.RunNowYielding("mail"); err != nil {
		t.Fatal(err)
	}
	if err := h.s.RunNow("mail"); !errors.Is(err, ErrRunning) {
		t.Errorf("RunNow during a yielding run: %v", err)
	}
	h.advance(25 * time.Minute) // 10:40 and 10:50 come while it goes on
	if over := h.of(EventOverlap); len(over) != 0 {
		t.Errorf("overlaps %+v: a yielding run made the schedule skip", over)
	}
	deferred := h.of(EventDeferred)
	if len(deferred) != 2 || !deferred[0].Slot.Equal(at(10, 40)) || !deferred[1].Slot.Equal(at(10, 50)) {
		t.Fatalf("deferred %+v, want 10:40 and 10:50", deferred)
	}
	h.mu.Lock()
	delete(h.block, "mail")
	h.mu.Unlock()
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for len(h.of(EventFinished)) < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	starts := h.of(EventStarted)
	if len(starts) != 3 || starts[1].Reason != Manual || starts[2].Reason != Scheduled || !starts[2].Slot.Equal(at(10, 40)) {
		t.Fatalf("runs %+v, want 10:30, the yielding one, then one for 10:40 when it ended", starts)
	}
	// the schedule goes on as before
	h.advance(10 * time.Minute) // 11:05
	h.wantStarts(at(10, 30), at(10, 30), at(10, 55), at(11, 0))
	if len(h.of(EventDeferred)) != 2 {
		t.Errorf("deferred events %+v after the yielding run", h.of(EventDeferred))
	}
}

func waitKind(t *testing.T, h *harness, kind EventKind) chan Event {
	out := make(chan Event, 1)
	go func() {
		deadline := time.After(5 * time.Second)
		for {
			select {
			case e := <-h.got:
				if e.Kind == kind {
					out <- e
					return
				}
			case <-deadline:
				t.Errorf("no %s event", kind)
				out <- Event{}
				return
			}
		}
	}()
	return out
}

func TestCatchUpAfterJumpForward(t *testing.T) {
	h := newHarness(t, 1)
	h.add(Job{Name: "db", Schedule: must(Parse("CRON_TZ=UTC 0 * * * *"))})
	h.run()
	// a suspend: the wall clock moves five hours, the monotonic one not
	h.clock.Jump(5 * time.Hour) // 15:30
	h.advance(DefaultMaxSleep)
	starts := h.of(EventStarted)
	if len(starts) != 1 {
		t.Fatalf("%d runs after the suspend, want 1: %+v", len(starts), starts)
	}
	if starts[0].Reason != CatchUp || !starts[0].Slot.Equal(at(11, 0)) || starts[0].Time.After(at(15, 31)) {
		t.Errorf("catch-up run %+v, want for 11:00 by 15:31", starts[0])
	}
	missed := h.of(EventMissed)
	if len(missed) != 1 || !missed[0].Slot.Equal(at(11, 0)) || missed[0].Late < 4*time.Hour || !missed[0].Next.Equal(at(16, 0)) {
		t.Errorf("missed %+v", missed)
	}
	h.advance(time.Hour)
	h.wantStarts(starts[0].Time, at(16, 0))
}

func TestCatchUpAtStartUp(t *testing.T) {
	daily := must(Parse("CRON_TZ=UTC 0 2 * * *"))
	// down since yesterday morning: today's 02:00 run is missed, and runs once
	h := newHarness(t, 1)
	h.add(Job{Name: "db", Schedule: daily, LastStart: at(2, 0).AddDate(0, 0, -2)})
	h.run()
	h.wantStarts(start)
	if e := h.of(EventStarted)[0]; e.Reason != CatchUp || !e.Slot.Equal(at(2, 0).AddDate(0, 0, -1)) {
		t.Errorf("started %+v", e)
	}
	if st, _ := h.s.JobStatus("db"); !st.Next.Equal(at(2, 0).AddDate(0, 0, 1)) {
		t.Errorf("next %v, want tomorrow 02:00", st.Next)
	}

	// ran today at 02:00: nothing to catch up
	h2 := newHarness(t, 1)
	h2.add(Job{Name: "db", Schedule: daily, LastStart: at(2, 0)})
	h2.run()
	h2.advance(time.Hour)
	h2.wantStarts()
}

func TestNoDoubleRunAfterJumpBack(t *testing.T) {
	h := newHarness(t, 1)
	h.add(Job{Name: "db", Schedule: must(Parse("CRON_TZ=UTC 0 * * * *"))})
	h.run()
	h.advance(40 * time.Minute) // the 11:00 run; now 11:10
	h.wantStarts(at(11, 0))
	h.clock.Jump(-30 * time.Minute) // 10:40 again
	h.advance(90 * time.Minute)     // the wall clock passes 11:00 a second time
	h.wantStarts(at(11, 0), at(12, 0))

	// a correction by days: the job resumes within two of its periods
	h.clock.Jump(-72 * time.Hour)
	now := h.clock.Now()
	h.advance(3 * time.Hour)
	got := h.startTimes()
	if len(got) < 3 || got[2].Sub(now) > 2*time.Hour {
		t.Errorf("after a jump back of three days the runs are %v (clock at %v)", got, now)
	}
}

func TestRunNowAndFailures(t *testing.T) {
	h := newHarness(t, 1)
	h.add(Job{Name: "db", Schedule: must(Parse("CRON_TZ=UTC 0 2 * * *")), LastSuccess: at(2, 0).AddDate(0, 0, -3)})
	if err := h.s.RunNow("db"); !errors.Is(err, ErrNotStarted) {
		t.Errorf("RunNow before Run: %v", err)
	}
	h.run()
	if st, _ := h.s.JobStatus("db"); !st.Overdue {
		t.Errorf("three days without a success and not overdue: %+v", st)
	}
	if err := h.s.RunNow("nope"); !errors.Is(err, ErrUnknownJob) {
		t.Errorf("RunNow of an unknown job: %v", err)
	}
	h.mu.Lock()
	h.runErr = errors.New("repository unreachable")
	h.mu.Unlock()
	if err := h.s.RunNow("db"); err != nil {
		t.Fatal(err)
	}
	fin := <-waitKind(t, h, EventFinished)
	if fin.Reason != Manual || fin.Err == nil {
		t.Errorf("finished %+v", fin)
	}
	st, _ := h.s.JobStatus("db")
	if st.LastError == nil || !st.LastSuccess.Equal(at(2, 0).AddDate(0, 0, -3)) || !st.Next.Equal(at(2, 0).AddDate(0, 0, 1)) || !st.Overdue {
		t.Errorf("after a failed manual run: %+v", st)
	}
	h.mu.Lock()
	h.runErr = nil
	h.mu.Unlock()
	if err := h.s.RunNow("db"); err != nil {
		t.Fatal(err)
	}
	<-waitKind(t, h, EventFinished)
	if st, _ := h.s.JobStatus("db"); st.LastError != nil || !st.LastSuccess.Equal(start) || st.Overdue {
		t.Errorf("after a successful manual run: %+v", st)
	}
}

func TestPanickingRunIsAnError(t *testing.T) {
	clock := NewFake(start)
	finished := make(chan Event, 10)
	s := New(func(context.Context, Trigger) error { panic("boom") }, Options{Clock: clock, OnEvent: func(e Event) {
		if e.Kind == EventFinished {
			finished <- e
		}
	}})
	if err := s.Add(Job{Name: "p", Schedule: must(Parse("every 1m"))}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	select {
	case e := <-finished:
		if e.Err == nil {
			t.Error("a panic is no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no finished event")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
}
