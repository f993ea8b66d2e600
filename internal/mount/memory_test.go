package mount

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestMemoryLimit(t *testing.T) {
	const floor, budget = 48 << 20, 16 << 20
	if got := MemoryLimit(0, 0, budget, floor); got != floor {
		t.Errorf("no live heap: limit %d, want the floor %d", got, floor)
	}
	if got := MemoryLimit(10<<20, 4<<20, budget, floor); got != floor {
		t.Errorf("a small live heap: limit %d, want the floor %d", got, floor)
	}
	if got, want := MemoryLimit(80<<20, 0, budget, floor), int64(80<<20+20<<20+budget); got != want {
		t.Errorf("80 MiB live: limit %d, want %d", got, want)
	}
	// what the runtime counts beside the objects is not headroom
	if got, want := MemoryLimit(80<<20, 12<<20, budget, floor), int64(80<<20+12<<20+20<<20+budget); got != want {
		t.Errorf("80 MiB live, 12 MiB overhead: limit %d, want %d", got, want)
	}
	// a huge snapshot: the limit stays above the live heap by the headroom
	// and the budget, so the collector does not run all the time
	prev := int64(0)
	for live := int64(0); live <= 8<<30; live += 64 << 20 {
		got := MemoryLimit(live, live/16, budget, floor)
		if got < prev {
			t.Fatalf("live %d: limit %d below the one for less (%d)", live, got, prev)
		}
		if live > floor && got < live+live/16+live/4+budget {
			t.Fatalf("live %d: limit %d leaves less than a quarter and the budget", live, got)
		}
		prev = got
	}
	if MemoryBudget(2*DefaultCacheSize) <= MemoryBudget(DefaultCacheSize) {
		t.Error("a larger cache gets no larger budget")
	}
}

// The policy follows the live heap: up as it grows, down as it shrinks,
// not at all for small moves, and the limit before it comes back on stop.
func TestMemoryPolicyFollowsLiveHeap(t *testing.T) {
	var limit int64 = 1 << 40
	sets := 0
	live, overhead := int64(0), int64(0)
	p := &memoryPolicy{budget: 8 << 20, floor: 48 << 20, heap: func() (int64, int64) { return live, overhead },
		set: func(n int64) int64 {
			old := limit
			if n >= 0 {
				limit = n
				sets++
			}
			return old
		}}
	p.prev = p.set(-1)
	p.update()
	if limit != 48<<20 {
		t.Fatalf("start: limit %d, want the floor", limit)
	}
	live = 200 << 20
	overhead = 10 << 20
	p.update()
	if want := MemoryLimit(live, overhead, 8<<20, 48<<20); limit != want {
		t.Fatalf("200 MiB live: limit %d, want %d", limit, want)
	}
	grown := limit
	live = 400 << 20
	p.update()
	if limit <= grown || limit <= live {
		t.Fatalf("400 MiB live: limit %d, want above %d and the live heap", limit, grown)
	}
	n := sets
	live += 1 << 20 // a small move: no new limit
	p.update()
	if sets != n {
		t.Errorf("a 1 MiB move set the limit again")
	}
	live = 20 << 20
	p.update()
	if limit != 48<<20 {
		t.Errorf("back to 20 MiB live: limit %d, want the floor", limit)
	}
	p.stop()
	if limit != 1<<40 {
		t.Errorf("after stop: limit %d, want the one before (%d)", limit, int64(1<<40))
	}
	if p.update() {
		t.Error("update after stop: want false, so the finalizer stops re-arming")
	}
}

// Wired to the runtime: a collection sets the limit, stop restores it, and
// a user's GOMEMLIMIT is left alone.
func TestStartMemoryPolicy(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Setenv("GOMEMLIMIT", "")
	stop := StartMemoryPolicy(8 << 20)
	keep := make([]byte, 64<<20) // live across the collections below
	for i := 0; i < 20 && debug.SetMemoryLimit(-1) < int64(len(keep)); i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // the finalizer runs on its own goroutine
	}
	got := debug.SetMemoryLimit(-1)
	runtime.KeepAlive(keep)
	stop()
	if got < 64<<20+16<<20 || got == before {
		t.Errorf("with 64 MiB live: limit %d, want above the live heap and its headroom", got)
	}
	if after := debug.SetMemoryLimit(-1); after != before {
		t.Errorf("after stop: limit %d, want %d", after, before)
	}

	t.Setenv("GOMEMLIMIT", "1GiB")
	stop = StartMemoryPolicy(8 << 20)
	runtime.GC()
	time.Sleep(10 * time.Millisecond)
	if now := debug.SetMemoryLimit(-1); now != before {
		t.Errorf("with GOMEMLIMIT set: limit %d, want it untouched (%d)", now, before)
	}
	stop()
}
