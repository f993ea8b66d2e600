package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Op names the backend operations a Fault can hit.
type Op uint8

// Operations; combine with |.
const (
	OpSave Op = 1 << iota
	OpLoad
	OpStat
	OpList
	OpRemove
	OpAll = OpSave | OpLoad | OpStat | OpList | OpRemove
)

// ErrInjected is the default error of a Fault. It is transient: Retry retries it.
var ErrInjected = errors.New("injected fault")

// Fault is one programmed failure of a Faulty backend. A call matches a
// fault when its operation is in Ops and its kind in Kinds (nil: every
// kind). A matching call fails when it is the Nth match (Nth > 0), or with
// probability Prob; at most Times times (0: no limit).
type Fault struct {
	Ops   Op
	Kinds []Kind
	Nth   int
	Prob  float64
	Times int
	// Err is returned by a failing call; nil means ErrInjected.
	Err error
	// AfterSave makes a failing Save store the data first and then report
	// the error, as when an acknowledgement is lost.
	AfterSave bool
	// ShortRead makes a failing Load return the first half of the data with
	// io.ErrUnexpectedEOF instead of Err.
	ShortRead bool
	// Delay is waited before every matching call, failing or not.
	Delay time.Duration

	matched, fired int
}

// Faulty wraps a backend and makes calls fail as programmed. It is safe
// for concurrent use; the random choices are reproducible for one seed
// when the calls come in the same order.
type Faulty struct {
	Backend
	mu       sync.Mutex
	rnd      *rand.Rand
	faults   []*Fault
	injected int
}

// NewFaulty wraps b; seed drives the Prob faults.
func NewFaulty(b Backend, seed uint64) *Faulty {
	return &Faulty{Backend: b, rnd: rand.New(rand.NewPCG(seed, seed^0x5eed))}
}

// Add programs a fault and returns f for chaining.
func (f *Faulty) Add(fault Fault) *Faulty {
	f.mu.Lock()
	defer f.mu.Unlock()
	fl := fault
	f.faults = append(f.faults, &fl)
	return f
}

// Clear removes every fault.
func (f *Faulty) Clear() {
	f.mu.Lock()
	f.faults = nil
	f.mu.Unlock()
}

// Injected returns how many calls failed on purpose so far.
func (f *Faulty) Injected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.injected
}

// decide returns the fault that fails this call (nil: none) and the delay to wait.
func (f *Faulty) decide(op Op, k Kind) (*Fault, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var delay time.Duration
	var hit *Fault
	for _, ft := range f.faults {
		if ft.Ops&op == 0 || (ft.Kinds != nil && !slices.Contains(ft.Kinds, k)) {
			continue
		}
		delay = max(delay, ft.Delay)
		ft.matched++
		if hit != nil || (ft.Times > 0 && ft.fired >= ft.Times) {
			continue
		}
		fire := ft.Nth > 0 && ft.matched == ft.Nth
		if !fire && ft.Prob > 0 {
			fire = f.rnd.Float64() < ft.Prob
		}
		if fire {
			ft.fired++
			f.injected++
			hit = ft
		}
	}
	return hit, delay
}

func (ft *Fault) err(op string, h fmt.Stringer) error {
	e := ft.Err
	if e == nil {
		e = ErrInjected
	}
	return fmt.Errorf("%s %s: %w", op, h, e)
}

func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Save implements Backend.
func (f *Faulty) Save(ctx context.Context, h Handle, data []byte) error {
	ft, d := f.decide(OpSave, h.Kind)
	if err := wait(ctx, d); err != nil {
		return err
	}
	if ft == nil {
		return f.Backend.Save(ctx, h, data)
	}
	if ft.AfterSave {
		if err := f.Backend.Save(ctx, h, data); err != nil {
			return err
		}
	}
	return ft.err("save", h)
}

// Load implements Backend.
func (f *Faulty) Load(ctx context.Context, h Handle, offset, length int64) ([]byte, error) {
	ft, d := f.decide(OpLoad, h.Kind)
	if err := wait(ctx, d); err != nil {
		return nil, err
	}
	if ft == nil {
		return f.Backend.Load(ctx, h, offset, length)
	}
	if ft.ShortRead {
		data, err := f.Backend.Load(ctx, h, offset, length)
		if err != nil {
			return nil, err
		}
		return data[:len(data)/2], fmt.Errorf("load %s: short read: %w: %w", h, ErrInjected, io.ErrUnexpectedEOF)
	}
	return nil, ft.err("load", h)
}

// LoadInto implements Backend, with the same faults as Load.
func (f *Faulty) LoadInto(ctx context.Context, h Handle, offset int64, buf []byte) error {
	ft, d := f.decide(OpLoad, h.Kind)
	if err := wait(ctx, d); err != nil {
		return err
	}
	if ft == nil {
		return f.Backend.LoadInto(ctx, h, offset, buf)
	}
	if ft.ShortRead {
		if err := f.Backend.LoadInto(ctx, h, offset, buf[:len(buf)/2]); err != nil {
			return err
		}
		return fmt.Errorf("load %s: short read: %w: %w", h, ErrInjected, io.ErrUnexpectedEOF)
	}
	return ft.err("load", h)
}

// Stat implements Backend.
func (f *Faulty) Stat(ctx context.Context, h Handle) (FileInfo, error) {
	ft, d := f.decide(OpStat, h.Kind)
	if err := wait(ctx, d); err != nil {
		return FileInfo{}, err
	}
	if ft != nil {
		return FileInfo{}, ft.err("stat", h)
	}
	return f.Backend.Stat(ctx, h)
}

// List implements Backend. A failing List fails before calling fn.
func (f *Faulty) List(ctx context.Context, k Kind, fn func(FileInfo) error) error {
	ft, d := f.decide(OpList, k)
	if err := wait(ctx, d); err != nil {
		return err
	}
	if ft != nil {
		return ft.err("list", Handle{Kind: k})
	}
	return f.Backend.List(ctx, k, fn)
}

// Remove implements Backend.
func (f *Faulty) Remove(ctx context.Context, h Handle) error {
	ft, d := f.decide(OpRemove, h.Kind)
	if err := wait(ctx, d); err != nil {
		return err
	}
	if ft != nil {
		return ft.err("remove", h)
	}
	return f.Backend.Remove(ctx, h)
}

// Create implements Creator when the wrapped backend does.
func (f *Faulty) Create(ctx context.Context) error {
	if c, ok := f.Backend.(Creator); ok {
		return c.Create(ctx)
	}
	return nil
}

// SyncRemovals implements RemovalSyncer when the wrapped backend does.
func (f *Faulty) SyncRemovals(ctx context.Context, k Kind) error {
	return SyncRemovals(ctx, f.Backend, k)
}
