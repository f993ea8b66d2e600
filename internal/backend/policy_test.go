package backend_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/backend/backendtest"
)

// probe wraps a backend and calls before (if set) ahead of every call; it
// counts calls and the most in flight at once per class.
type probe struct {
	backend.Backend
	before func(ctx context.Context, op string) error

	mu                   sync.Mutex
	calls                map[string]int
	inflight, peak       map[string]int
	creates, syncs       atomic.Int32
	createErr, syncedErr error
}

func newProbe(b backend.Backend) *probe {
	return &probe{Backend: b, calls: map[string]int{}, inflight: map[string]int{}, peak: map[string]int{}}
}

func class(op string) string {
	switch op {
	case "save", "load":
		return "transfer"
	}
	return "metadata"
}

func (p *probe) enter(ctx context.Context, op string) (func(), error) {
	c := class(op)
	p.mu.Lock()
	p.calls[op]++
	p.inflight[c]++
	p.peak[c] = max(p.peak[c], p.inflight[c])
	p.mu.Unlock()
	leave := func() { p.mu.Lock(); p.inflight[c]--; p.mu.Unlock() }
	if p.before != nil {
		if err := p.before(ctx, op); err != nil {
			leave()
			return nil, err
		}
	}
	return leave, nil
}

func (p *probe) count(op string) int { p.mu.Lock(); defer p.mu.Unlock(); return p.calls[op] }
func (p *probe) peakOf(c string) int { p.mu.Lock(); defer p.mu.Unlock(); return p.peak[c] }

func (p *probe) Save(ctx context.Context, h backend.Handle, data []byte) error {
	leave, err := p.enter(ctx, "save")
	if err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	defer leave()
	return p.Backend.Save(ctx, h, data)
}

func (p *probe) Load(ctx context.Context, h backend.Handle, off, n int64) ([]byte, error) {
	leave, err := p.enter(ctx, "load")
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", h, err)
	}
	defer leave()
	return p.Backend.Load(ctx, h, off, n)
}

func (p *probe) LoadInto(ctx context.Context, h backend.Handle, off int64, buf []byte) error {
	leave, err := p.enter(ctx, "load")
	if err != nil {
		return fmt.Errorf("load %s: %w", h, err)
	}
	defer leave()
	return p.Backend.LoadInto(ctx, h, off, buf)
}

func (p *probe) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	leave, err := p.enter(ctx, "stat")
	if err != nil {
		return backend.FileInfo{}, fmt.Errorf("stat %s: %w", h, err)
	}
	defer leave()
	return p.Backend.Stat(ctx, h)
}

func (p *probe) List(ctx context.Context, k backend.Kind, fn func(backend.FileInfo) error) error {
	leave, err := p.enter(ctx, "list")
	if err != nil {
		return fmt.Errorf("list %s: %w", k, err)
	}
	defer leave()
	return p.Backend.List(ctx, k, fn)
}

func (p *probe) Remove(ctx context.Context, h backend.Handle) error {
	leave, err := p.enter(ctx, "remove")
	if err != nil {
		return fmt.Errorf("remove %s: %w", h, err)
	}
	defer leave()
	return p.Backend.Remove(ctx, h)
}

func (p *probe) Create(ctx context.Context) error {
	p.creates.Add(1)
	return p.createErr
}

func (p *probe) SyncRemovals(ctx context.Context, k backend.Kind) error {
	p.syncs.Add(1)
	return p.syncedErr
}

// hang blocks until the request's context ends, as a request on a dead
// connection does.
func hang(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// fast is a policy with the remote layers and test-sized times.
func fast() backend.Policy {
	p := backend.RemotePolicy()
	p.Backoff, p.MaxBackoff = time.Millisecond, 5*time.Millisecond
	p.RequestBase = 2 * time.Second
	return p
}

func TestPolicyConformance(t *testing.T) {
	for name, pol := range map[string]backend.Policy{"local": backend.LocalPolicy(), "remote": fast()} {
		t.Run(name, func(t *testing.T) {
			backendtest.Run(t, func(t *testing.T) backend.Backend {
				return backend.WithPolicy(backend.NewLocal(t.TempDir()+"/repo"), pol)
			})
		})
	}
}

func TestPolicyRetriesTransientFailuresUntilSuccess(t *testing.T) {
	f := backend.NewFaulty(backend.NewMem(), 1)
	f.Add(backend.Fault{Ops: backend.OpLoad, Prob: 1, Times: 2, Err: errors.New("503 Service Unavailable")})
	pol := fast()
	var retried []string
	pol.OnRetry = func(op string, h backend.Handle, attempt int, err error) {
		retried = append(retried, fmt.Sprintf("%s %s attempt %d: %v", op, h, attempt, err))
	}
	b := backend.WithPolicy(f, pol)
	h := pack()
	if err := b.Save(ctx, h, []byte("pack")); err != nil {
		t.Fatal(err)
	}
	got, err := b.Load(ctx, h, 0, 0)
	if err != nil || string(got) != "pack" {
		t.Fatalf("load after two 503s: %q, %v", got, err)
	}
	if f.Injected() != 2 || len(retried) != 2 {
		t.Fatalf("%d faults, retries reported: %q", f.Injected(), retried)
	}
	if want := fmt.Sprintf("load %s attempt 2: load %s: 503", h, h); !strings.HasPrefix(retried[1], want) {
		t.Fatalf("second retry reported as %q, want it to start with %q", retried[1], want)
	}
}

func TestPolicyDoesNotRetryPermanentFailures(t *testing.T) {
	denied := backend.MarkPermanent(errors.New("403 AccessDenied"))
	for _, perm := range []error{denied, backend.ErrNotFound, context.Canceled} {
		f := backend.NewFaulty(backend.NewMem(), 1)
		f.Add(backend.Fault{Ops: backend.OpAll, Prob: 1, Err: perm})
		b := backend.WithPolicy(f, fast())
		if _, err := b.Stat(ctx, pack()); !errors.Is(err, perm) || f.Injected() != 1 {
			t.Errorf("%v: %d attempts, err %v; want 1 attempt", perm, f.Injected(), err)
		}
	}
}

func TestPolicyGivesUpAfterAttempts(t *testing.T) {
	f := backend.NewFaulty(backend.NewMem(), 1)
	f.Add(backend.Fault{Ops: backend.OpSave, Prob: 1, Err: errors.New("connection reset by peer")})
	pol := fast()
	pol.Attempts = 5
	err := backend.WithPolicy(f, pol).Save(ctx, pack(), []byte("x"))
	if err == nil || f.Injected() != 5 || !strings.Contains(err.Error(), "gave up after 5 attempts") {
		t.Fatalf("%d attempts, err %v", f.Injected(), err)
	}
}

func TestRetryWaitsAtLeastBackoff(t *testing.T) {
	var mu sync.Mutex
	var at []time.Time
	p := newProbe(backend.NewMem())
	p.before = func(context.Context, string) error {
		mu.Lock()
		defer mu.Unlock()
		at = append(at, time.Now())
		if len(at) <= 3 {
			return errors.New("500 InternalError")
		}
		return nil
	}
	r := backend.NewRetry(p)
	r.Backoff, r.MaxBackoff = 20*time.Millisecond, 40*time.Millisecond
	if _, err := r.Load(ctx, pack(), 0, 0); !backend.IsNotFound(err) {
		t.Fatalf("load: %v", err)
	}
	if len(at) != 4 {
		t.Fatalf("%d attempts, want 4", len(at))
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < r.Backoff {
			t.Fatalf("attempt %d came %v after the one before, sooner than the backoff %v", i+1, gap, r.Backoff)
		}
	}
}

func TestRetryBudgetEndsACall(t *testing.T) {
	f := backend.NewFaulty(backend.NewMem(), 1)
	f.Add(backend.Fault{Ops: backend.OpStat, Prob: 1})
	r := backend.NewRetry(f)
	r.Attempts, r.Backoff, r.MaxBackoff, r.Budget = 1000, 30*time.Millisecond, 30*time.Millisecond, 200*time.Millisecond
	start := time.Now()
	_, err := r.Stat(ctx, pack())
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "retry budget") || !errors.Is(err, backend.ErrInjected) {
		t.Fatalf("err %v", err)
	}
	// no wait begins that would end past the budget; the timer of the last
	// one may fire late on a busy machine, by less than a backoff
	if took > r.Budget+r.Backoff || f.Injected() < 3 || f.Injected() > 8 {
		t.Fatalf("budget %v: the call took %v and %d attempts", r.Budget, took, f.Injected())
	}
}

func TestDeadlineCutsAHangingRequest(t *testing.T) {
	p := newProbe(backend.NewMem())
	p.before = func(ctx context.Context, op string) error { return hang(ctx) }
	pol := fast()
	pol.Attempts, pol.RequestBase, pol.MinRate = 3, 50*time.Millisecond, 0
	b := backend.WithPolicy(p, pol)
	h := pack()
	start := time.Now()
	_, err := b.Load(ctx, h, 0, 100)
	took := time.Since(start)
	if !errors.Is(err, backend.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hanging load: %v, want ErrTimeout (and not the caller's deadline)", err)
	}
	msg := err.Error()
	for _, want := range []string{"load " + h.String(), "no answer within 50ms", "gave up after 3 attempts"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if p.count("load") != 3 || took > 2*time.Second {
		t.Fatalf("%d attempts in %v", p.count("load"), took)
	}
}

func TestDeadlinePassedIsRetriedThenSucceeds(t *testing.T) {
	var n atomic.Int32
	p := newProbe(backend.NewMem())
	p.before = func(ctx context.Context, op string) error {
		if op == "save" && n.Add(1) == 1 {
			return hang(ctx)
		}
		return nil
	}
	pol := fast()
	pol.RequestBase = 50 * time.Millisecond
	var timeouts int
	pol.OnRetry = func(_ string, _ backend.Handle, _ int, err error) {
		if errors.Is(err, backend.ErrTimeout) {
			timeouts++
		}
	}
	b := backend.WithPolicy(p, pol)
	if err := b.Save(ctx, pack(), []byte("x")); err != nil || timeouts != 1 || p.count("save") != 2 {
		t.Fatalf("save: %v after %d attempts, %d timeouts retried", err, p.count("save"), timeouts)
	}
}

func TestDeadlineGrowsWithSize(t *testing.T) {
	p := newProbe(backend.NewMem())
	p.before = func(ctx context.Context, op string) error {
		select { // every request takes 300ms
		case <-time.After(300 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	d := &backend.Deadline{Backend: p, Base: 100 * time.Millisecond, MinRate: 1 << 20}
	if err := d.Save(ctx, pack(), make([]byte, 1<<20)); err != nil {
		t.Fatalf("1 MiB save in 300ms with a deadline of 100ms + 1s: %v", err)
	}
	if err := d.Save(ctx, pack(), []byte("small")); !errors.Is(err, backend.ErrTimeout) {
		t.Fatalf("small save in 300ms with a deadline of about 100ms: %v", err)
	}
	if err := d.LoadInto(ctx, pack(), 0, make([]byte, 1<<20)); !backend.IsNotFound(err) {
		t.Fatalf("1 MiB LoadInto got the small deadline: %v", err)
	}
	if _, err := d.Stat(ctx, pack()); !errors.Is(err, backend.ErrTimeout) || !strings.Contains(err.Error(), "stat data/") {
		t.Fatalf("slow stat: %v", err)
	}
}

func TestCallerContextIsHonouredAtOnce(t *testing.T) {
	quick := func(t *testing.T, what string, call func(context.Context) error) {
		t.Helper()
		c, cancel := context.WithCancel(ctx)
		time.AfterFunc(30*time.Millisecond, cancel)
		start := time.Now()
		err := call(c)
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s: returned %v after the cancel", what, took)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v, want context.Canceled", what, err)
		}
	}
	t.Run("in a request", func(t *testing.T) {
		p := newProbe(backend.NewMem())
		p.before = func(ctx context.Context, op string) error { return hang(ctx) }
		pol := backend.RemotePolicy() // 15s deadlines, 1s backoff
		b := backend.WithPolicy(p, pol)
		quick(t, "hanging load", func(c context.Context) error { _, err := b.Load(c, pack(), 0, 0); return err })
		if p.count("load") != 1 {
			t.Errorf("a canceled load was tried %d times", p.count("load"))
		}
	})
	t.Run("in the backoff", func(t *testing.T) {
		f := backend.NewFaulty(backend.NewMem(), 1)
		f.Add(backend.Fault{Ops: backend.OpAll, Prob: 1})
		pol := backend.RemotePolicy()
		pol.Backoff = time.Hour
		b := backend.WithPolicy(f, pol)
		quick(t, "backoff", func(c context.Context) error {
			err := b.Remove(c, pack())
			if !errors.Is(err, backend.ErrInjected) {
				return err
			}
			return c.Err() // the last failure is returned, after the cancel
		})
	})
	t.Run("waiting for a slot", func(t *testing.T) {
		release := make(chan struct{})
		p := newProbe(backend.NewMem())
		p.before = func(ctx context.Context, op string) error { <-release; return nil }
		pol := backend.RemotePolicy()
		pol.Transfers = 1
		b := backend.WithPolicy(p, pol)
		done := make(chan error)
		go func() { done <- b.Save(ctx, pack(), []byte("holds the slot")) }()
		for p.count("save") == 0 {
			time.Sleep(time.Millisecond)
		}
		quick(t, "queued save", func(c context.Context) error {
			err := b.Save(c, pack(), []byte("queued"))
			if err != nil && !strings.Contains(err.Error(), "waiting for a free request slot") {
				t.Errorf("queued save: %v", err)
			}
			return err
		})
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if p.count("save") != 1 {
			t.Fatalf("the canceled save reached the backend")
		}
	})
	t.Run("caller's deadline is not retried", func(t *testing.T) {
		p := newProbe(backend.NewMem())
		p.before = func(ctx context.Context, op string) error { return hang(ctx) }
		b := backend.WithPolicy(p, backend.RemotePolicy())
		c, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, err := b.Stat(c, pack())
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, backend.ErrTimeout) || p.count("stat") != 1 {
			t.Fatalf("stat past the caller's deadline: %v after %d attempts", err, p.count("stat"))
		}
	})
}

func TestLimitIsNeverExceeded(t *testing.T) {
	p := newProbe(backend.NewMem())
	p.before = func(ctx context.Context, op string) error { time.Sleep(2 * time.Millisecond); return nil }
	pol := fast()
	pol.Transfers, pol.Metadata = 3, 2
	b := backend.WithPolicy(p, pol)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			h := pack()
			var err error
			switch i % 4 {
			case 0:
				err = b.Save(ctx, h, []byte("x"))
			case 1:
				_, err = b.Load(ctx, h, 0, 0)
			case 2:
				_, err = b.Stat(ctx, h)
			case 3:
				err = b.List(ctx, backend.Packs, func(backend.FileInfo) error { return nil })
			}
			if err != nil && !backend.IsNotFound(err) {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if tr, md := p.peakOf("transfer"), p.peakOf("metadata"); tr != 3 || md != 2 {
		t.Fatalf("at most %d transfers and %d metadata calls at once; want the limits 3 and 2 reached, never passed", tr, md)
	}
}

func TestLimitKeepsMetadataApartFromTransfers(t *testing.T) {
	release := make(chan struct{})
	p := newProbe(backend.NewMem())
	p.before = func(ctx context.Context, op string) error {
		if op == "save" {
			<-release
		}
		return nil
	}
	b := backend.NewLimit(p, 2, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { _ = b.Save(ctx, pack(), []byte("slow upload")) })
	}
	for p.count("save") < 2 {
		time.Sleep(time.Millisecond)
	}
	c, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := b.Stat(c, pack()); !backend.IsNotFound(err) {
		t.Fatalf("stat behind two stuck uploads: %v", err)
	}
	close(release)
	wg.Wait()
}

func TestWrappersPassOnOptionalInterfaces(t *testing.T) {
	p := newProbe(backend.NewMem())
	b := backend.WithPolicy(p, fast())
	c, ok := b.(backend.Creator)
	if !ok {
		t.Fatal("WithPolicy hides Creator")
	}
	if err := c.Create(ctx); err != nil || p.creates.Load() != 1 {
		t.Fatalf("Create: %v, reached the backend %d times", err, p.creates.Load())
	}
	if err := backend.SyncRemovals(ctx, b, backend.Packs); err != nil || p.syncs.Load() != 1 {
		t.Fatalf("SyncRemovals: %v, reached the backend %d times", err, p.syncs.Load())
	}
	// and their failures are retried like any other call
	p.createErr = errors.New("500 InternalError")
	if err := c.Create(ctx); err == nil || p.creates.Load() != 1+6 {
		t.Fatalf("failing Create: %v after %d calls", err, p.creates.Load()-1)
	}
	// a backend without them: the wrappers do nothing
	plain := backend.WithPolicy(struct{ backend.Backend }{backend.NewMem()}, fast())
	if err := plain.(backend.Creator).Create(ctx); err != nil {
		t.Fatal(err)
	}
	if err := backend.SyncRemovals(ctx, plain, backend.Packs); err != nil {
		t.Fatal(err)
	}
}
