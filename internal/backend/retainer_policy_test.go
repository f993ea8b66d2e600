package backend_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/backend/metered"
)

// retainStore is a memory store with object lock calls whose first
// failures tries fail, and whose calls block while hold is set.
type retainStore struct {
	backend.Backend
	mu       sync.Mutex
	failures int
	hold     bool
	inflight int
	peak     int
	set      map[backend.Handle]backend.Retention
	writes   backend.WriteRetention
}

func (s *retainStore) call(ctx context.Context) error {
	s.mu.Lock()
	s.inflight++
	s.peak = max(s.peak, s.inflight)
	fail, hold := s.failures > 0, s.hold
	if fail {
		s.failures--
	}
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.inflight--; s.mu.Unlock() }()
	if hold {
		return hang(ctx)
	}
	if fail {
		return errors.New("503 SlowDown")
	}
	return nil
}

func (s *retainStore) ObjectLock(ctx context.Context) (backend.ObjectLock, error) {
	return backend.ObjectLock{Enabled: true}, s.call(ctx)
}

func (s *retainStore) RetainWrites(w backend.WriteRetention) { s.writes = w }

func (s *retainStore) Retention(ctx context.Context, h backend.Handle) (backend.Retention, error) {
	if err := s.call(ctx); err != nil {
		return backend.Retention{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set[h], nil
}

func (s *retainStore) SetRetention(ctx context.Context, h backend.Handle, r backend.Retention) error {
	if err := s.call(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set[h] = r
	return nil
}

// remoteStack is the stack of an S3 repository: the policy over the
// meter over the store.
func remoteStack(s *retainStore, p backend.Policy) (backend.Backend, *metered.Meter) {
	m := metered.NewMeter(1000)
	return backend.WithPolicy(metered.New(s, m), p), m
}

// The object lock calls (prune's retention checks and extensions, init's
// check of the bucket) are retried, counted, bounded and timed like every
// other request.
func TestRetainerCallsGoThroughThePolicyAndTheMeter(t *testing.T) {
	s := &retainStore{Backend: backend.NewMem(), set: map[backend.Handle]backend.Retention{}}
	b, m := remoteStack(s, fast())
	rt, ok := backend.AsRetainer(b)
	if !ok {
		t.Fatal("the policy and the meter hide the store's Retainer")
	}
	h := pack()
	until := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)

	s.failures = 2
	if err := rt.SetRetention(ctx, h, backend.Retention{Mode: backend.Compliance, Until: until}); err != nil {
		t.Fatalf("SetRetention after two 503s: %v", err)
	}
	s.failures = 2
	got, err := rt.Retention(ctx, h)
	if err != nil || !got.Until.Equal(until) {
		t.Fatalf("Retention after two 503s: %v, %v", got, err)
	}
	s.failures = 1
	if ol, err := rt.ObjectLock(ctx); err != nil || !ol.Enabled {
		t.Fatalf("ObjectLock after a 503: %+v, %v", ol, err)
	}
	// every try reached the store, and was counted
	c := m.Counts()
	if n := c.Of(backend.Packs, metered.OpSetRetention); n != 3 {
		t.Errorf("set-retention counted %d times, want 3 (2 failed tries and 1 that succeeded)", n)
	}
	if n := c.Of(backend.Packs, metered.OpRetention); n != 3 {
		t.Errorf("retention counted %d times, want 3", n)
	}
	if n := c.Of(metered.Bucket, metered.OpRetention); n != 2 {
		t.Errorf("the bucket's object lock counted %d times, want 2", n)
	}
	if c.Total != 8 || c.Requests[metered.OpRetention] != 5 {
		t.Errorf("counts %+v", c)
	}
	rt.RetainWrites(backend.WriteRetention{Mode: backend.Governance, Period: time.Hour})
	if s.writes.Mode != backend.Governance {
		t.Errorf("RetainWrites did not reach the store: %+v", s.writes)
	}

	// a call that hangs is cut by its deadline and retried, each try
	// queueing for a metadata slot
	pol := fast()
	pol.RequestBase, pol.Attempts, pol.Metadata = 50*time.Millisecond, 2, 2
	s2 := &retainStore{Backend: backend.NewMem(), set: map[backend.Handle]backend.Retention{}, hold: true}
	b2, m2 := remoteStack(s2, pol)
	rt2, _ := backend.AsRetainer(b2)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = rt2.Retention(ctx, h)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if !errors.Is(err, backend.ErrTimeout) {
			t.Errorf("a hanging Retention: %v, want ErrTimeout", err)
		}
	}
	if n := m2.Counts().Of(backend.Packs, metered.OpRetention); n != 12 {
		t.Errorf("%d tries of 6 hanging calls, want 12 (2 each)", n)
	}
	if s2.peak > 2 {
		t.Errorf("%d object lock calls in flight at once, the limit is 2", s2.peak)
	}

	// a store without object lock: none through the wrappers either
	if _, ok := backend.AsRetainer(backend.WithPolicy(metered.New(backend.NewMem(), metered.NewMeter(0)), fast())); ok {
		t.Error("the wrappers of a store without object lock claim a Retainer")
	}
}
