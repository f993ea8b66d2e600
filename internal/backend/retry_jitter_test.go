package backend

import (
	"testing"
	"time"
)

func TestRetryBackoffJitterWithinBounds(t *testing.T) {
	r := &Retry{Backoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second}
	lowest, highest := time.Hour, time.Duration(0) // of the first wait
	reachedCap := false
	for range 2000 {
		var prev time.Duration
		for i := range 10 {
			w := r.nextBackoff(prev)
			hi := min(r.MaxBackoff, 3*max(prev, r.Backoff))
			if w < r.Backoff || w > hi {
				t.Fatalf("wait %d after %v is %v, want within [%v, %v]", i+1, prev, w, r.Backoff, hi)
			}
			if i == 0 {
				lowest, highest = min(lowest, w), max(highest, w)
			}
			reachedCap = reachedCap || w > r.MaxBackoff*9/10
			prev = w
		}
	}
	// the first wait spreads over [100ms, 300ms], not a fixed value
	if lowest > 110*time.Millisecond || highest < 290*time.Millisecond {
		t.Fatalf("first waits span only [%v, %v] of [100ms, 300ms]", lowest, highest)
	}
	if !reachedCap {
		t.Fatal("no sequence of 10 waits came near the 2s cap: the waits do not grow")
	}
}

func TestRetryBackoffExtremes(t *testing.T) {
	r := &Retry{Backoff: 10 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, jitter: func() float64 { return 0 }}
	if w := r.nextBackoff(200 * time.Millisecond); w != 10*time.Millisecond {
		t.Fatalf("jitter 0: wait %v, want the floor 10ms", w)
	}
	r.jitter = func() float64 { return 1 }
	want := []time.Duration{30, 90, 270, 500, 500}
	var prev time.Duration
	for i, ms := range want {
		prev = r.nextBackoff(prev)
		if prev != ms*time.Millisecond {
			t.Fatalf("jitter 1, wait %d: %v, want %vms", i+1, prev, ms)
		}
	}
	// a floor above the cap is the cap
	r = &Retry{Backoff: time.Hour, MaxBackoff: time.Second}
	if w := r.nextBackoff(0); w != time.Second {
		t.Fatalf("backoff above the cap: %v", w)
	}
	// no cap: the waits grow without bound
	r = &Retry{Backoff: time.Second, jitter: func() float64 { return 1 }}
	if w := r.nextBackoff(time.Hour); w != 3*time.Hour {
		t.Fatalf("uncapped wait after 1h: %v", w)
	}
}
