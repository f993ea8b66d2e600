package schedule

import (
	"sync"
	"time"
)

// Clock is the scheduler's view of time. Now is the wall clock; timers
// run on a monotonic clock, which stops while the machine is suspended
// and does not follow changes of the wall clock, so the scheduler never
// sleeps long on one timer and compares wall times when it wakes.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it does not drain C.
	Stop()
}

// Real is the system clock.
type Real struct{}

// Now returns the wall time without its monotonic reading, so every
// comparison the scheduler makes is of wall times.
func (Real) Now() time.Time { return time.Now().Round(0) }

// NewTimer returns a time.Timer.
func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop()               { r.t.Stop() }

// Fake is a clock for tests. Advance moves the wall and the monotonic
// clock together, as time passing does; Jump moves only the wall clock,
// as a suspend (forward) or a clock correction (either way) does.
type Fake struct {
	mu      sync.Mutex
	wall    time.Time
	mono    time.Duration
	timers  []*fakeTimer
	changed chan struct{} // closed and replaced when timers change
}

// NewFake returns a fake clock reading now.
func NewFake(now time.Time) *Fake {
	return &Fake{wall: now, changed: make(chan struct{})}
}

type fakeTimer struct {
	f        *Fake
	deadline time.Duration // on the monotonic clock
	c        chan time.Time
}

// Now returns the fake wall time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wall
}

// NewTimer returns a timer that fires when Advance has moved the
// monotonic clock d past now.
func (f *Fake) NewTimer(d time.Duration) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{f: f, deadline: f.mono + d, c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- f.wall
		return t
	}
	f.timers = append(f.timers, t)
	f.notify()
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() {
	f := t.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.remove(t)
}

func (f *Fake) remove(t *fakeTimer) {
	for i, x := range f.timers {
		if x == t {
			f.timers = append(f.timers[:i], f.timers[i+1:]...)
			f.notify()
			return
		}
	}
}

func (f *Fake) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// Advance lets d pass: both clocks move and the timers due fire.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wall = f.wall.Add(d)
	f.mono += d
	var keep []*fakeTimer
	for _, t := range f.timers {
		if t.deadline <= f.mono {
			t.c <- f.wall
		} else {
			keep = append(keep, t)
		}
	}
	f.timers = keep
	f.notify()
}

// Jump moves the wall clock by d (negative: back) and fires no timer.
func (f *Fake) Jump(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wall = f.wall.Add(d)
}

// Timers returns how many timers are waiting.
func (f *Fake) Timers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// WaitTimers blocks until n timers are waiting, or timeout passes (real
// time); it reports whether they were.
func (f *Fake) WaitTimers(n int, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		f.mu.Lock()
		have, changed := len(f.timers), f.changed
		f.mu.Unlock()
		if have >= n {
			return true
		}
		select {
		case <-changed:
		case <-deadline:
			return false
		}
	}
}

// Until returns how long until the earliest waiting timer fires, and
// false when none waits.
func (f *Fake) Until() (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.timers) == 0 {
		return 0, false
	}
	d := f.timers[0].deadline
	for _, t := range f.timers[1:] {
		d = min(d, t.deadline)
	}
	return d - f.mono, true
}
