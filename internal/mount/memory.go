package mount

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// The mount's memory policy. A mount lives long and its live heap moves
// with what the kernel asks for (inodes of the directories looked at, blobs
// cached, windows, pushes in flight), so a fixed limit is either loose on a
// small snapshot or, on a huge one whose inodes alone exceed it, keeps the
// collector running all the time. Instead, after every collection the soft
// limit (debug.SetMemoryLimit) is set from the heap that collection found
// live: the runtime then both collects before the heap outgrows the limit
// and returns freed pages to the system soon (its scavenger keeps the
// memory it holds below the limit), where the heap goal of GOGC alone lets
// freed memory linger around a peak. As the live heap grows, the limit
// grows with it, so the collector never chases a limit below the live heap.
const (
	// MemoryFloor is the lowest limit the policy sets: below it the
	// collector would run often for nothing.
	MemoryFloor = 48 << 20
	// memoryHeadroom is the share of the live heap allowed on top of it
	// before a collection (as GOGC=25 does), plus the budget.
	memoryHeadroom = 0.25
	// memoryStep: the limit is only set again when it moves by more than
	// this share (setting it stops the world briefly).
	memoryStep = 1.0 / 32
)

// MemoryLimit is the soft limit for a live heap of live bytes and overhead
// bytes the runtime counts beside the heap's objects (fragmentation, stacks,
// metadata): at least floor, and above both by a headroom for new objects
// of a share of the live heap and budget bytes (buffers of reads and pushes
// in flight), so the collector never chases a limit at the live heap.
func MemoryLimit(live, overhead, budget, floor int64) int64 {
	return max(floor, live+overhead+int64(float64(live)*memoryHeadroom)+budget)
}

// MemoryBudget is the allocation budget of a mount with a blob cache of
// cacheSize bytes, beside the share of the live heap: half the cache, for
// the blobs on their way into it (4 MiB by default; more headroom bought
// no time in the benchmark, only memory).
func MemoryBudget(cacheSize int64) int64 {
	return cacheSize / 2
}

// memoryPolicy sets the limit after every collection.
type memoryPolicy struct {
	budget, floor int64
	set           func(int64) int64             // debug.SetMemoryLimit
	heap          func() (live, overhead int64) // heapNow

	mu      sync.Mutex
	stopped bool
	last    int64 // the limit set last
	prev    int64 // the limit before the policy
}

// StartMemoryPolicy makes the process's soft memory limit follow its live
// heap (MemoryLimit with budget and MemoryFloor, after every collection) until the returned stop is
// called, which puts the limit back. A GOMEMLIMIT set by the user wins: the
// policy does nothing then.
func StartMemoryPolicy(budget int64) (stop func()) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	p := &memoryPolicy{budget: budget, floor: MemoryFloor, set: debug.SetMemoryLimit, heap: heapNow}
	p.start()
	return p.stop
}

func (p *memoryPolicy) start() {
	p.prev = p.set(-1)
	p.update()
	p.arm()
}

// arm has p.update run after the next collection: the finalizer of an
// object nothing refers to runs once a collection found it unreachable.
func (p *memoryPolicy) arm() {
	tick := new([32]byte) // not a tiny allocation, whose finalizer may never run
	runtime.SetFinalizer(tick, func(*[32]byte) {
		if p.update() {
			p.arm()
		}
	})
}

// update sets the limit for the live heap; false once stopped.
func (p *memoryPolicy) update() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return false
	}
	live, overhead := p.heap()
	limit := MemoryLimit(live, overhead, p.budget, p.floor)
	if d := limit - p.last; p.last == 0 || float64(max(d, -d)) > float64(p.last)*memoryStep {
		p.set(limit)
		p.last = limit
	}
	return true
}

func (p *memoryPolicy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stopped {
		p.stopped = true
		p.set(p.prev)
	}
}

// heapNow is the heap the last collection marked live (0 before the first
// one), and the memory the runtime counts against the limit beside heap
// objects and free pages: fragmentation of spans, stacks, its metadata.
func heapNow() (live, overhead int64) {
	s := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
	}
	metrics.Read(s)
	var v [5]int64
	for i := range s {
		if s[i].Value.Kind() == metrics.KindUint64 {
			v[i] = int64(s[i].Value.Uint64())
		}
	}
	return v[0], max(0, v[1]-v[2]-v[3]-v[4])
}
