package backend_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/backend/backendtest"
)

var ctx = context.Background()

func pack() backend.Handle { return backend.Handle{Kind: backend.Packs, Name: backendtest.Name()} }

func TestFaultyNth(t *testing.T) {
	f := backend.NewFaulty(backend.NewMem(), 1)
	f.Add(backend.Fault{Ops: backend.OpSave, Nth: 3})
	var hs []backend.Handle
	for i := 1; i <= 6; i++ {
		h := pack()
		hs = append(hs, h)
		err := f.Save(ctx, h, []byte{byte(i)})
		if (i == 3) != (err != nil) {
			t.Fatalf("save #%d: err %v; only #3 should fail", i, err)
		}
		if i == 3 && !errors.Is(err, backend.ErrInjected) {
			t.Fatalf("save #3 failed with %v, want ErrInjected", err)
		}
	}
	// a failed Save stores nothing
	if _, err := f.Stat(ctx, hs[2]); !backend.IsNotFound(err) {
		t.Fatalf("failed save left a file: %v", err)
	}
	if f.Injected() != 1 {
		t.Fatalf("Injected() = %d, want 1", f.Injected())
	}
}

func TestFaultyKindsAndTimes(t *testing.T) {
	myErr := errors.New("disk on fire")
	f := backend.NewFaulty(backend.NewMem(), 1)
	f.Add(backend.Fault{Ops: backend.OpSave | backend.OpLoad, Kinds: []backend.Kind{backend.Indexes}, Prob: 1, Times: 2, Err: myErr})
	idx := backend.Handle{Kind: backend.Indexes, Name: backendtest.Name()}
	p := pack()
	if err := f.Save(ctx, p, []byte("p")); err != nil {
		t.Fatalf("pack save hit an index-only fault: %v", err)
	}
	if err := f.Save(ctx, idx, []byte("i")); !errors.Is(err, myErr) {
		t.Fatalf("index save: %v, want the programmed error", err)
	}
	if _, err := f.Load(ctx, idx, 0, 0); !errors.Is(err, myErr) {
		t.Fatalf("index load: %v, want the programmed error", err)
	}
	// Times: 2 is used up
	if err := f.Save(ctx, idx, []byte("i")); err != nil {
		t.Fatalf("third index call still failing after Times: 2: %v", err)
	}
	if _, err := f.Load(ctx, p, 0, 0); err != nil {
		t.Fatal(err)
	}
}

func TestFaultyProbabilityIsSeeded(t *testing.T) {
	pattern := func(seed uint64) []bool {
		f := backend.NewFaulty(backend.NewMem(), seed)
		f.Add(backend.Fault{Ops: backend.OpSave, Prob: 0.3})
		var out []bool
		for range 400 {
			out = append(out, f.Save(ctx, pack(), []byte("x")) != nil)
		}
		return out
	}
	a, b, c := pattern(7), pattern(7), pattern(8)
	fails := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, different failure at call %d", i)
		}
		if a[i] {
			fails++
		}
	}
	if fails < 80 || fails > 160 {
		t.Fatalf("Prob 0.3 failed %d of 400 calls", fails)
	}
	if equalBools(a, c) {
		t.Fatal("different seeds gave the same failures")
	}
}

func equalBools(a, b []bool) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFaultyAfterSaveAndShortRead(t *testing.T) {
	mem := backend.NewMem()
	f := backend.NewFaulty(mem, 1)
	f.Add(backend.Fault{Ops: backend.OpSave, Nth: 1, AfterSave: true})
	f.Add(backend.Fault{Ops: backend.OpLoad, Nth: 1, ShortRead: true})
	h := pack()
	if err := f.Save(ctx, h, []byte("0123456789")); !errors.Is(err, backend.ErrInjected) {
		t.Fatalf("AfterSave: %v", err)
	}
	if got, err := mem.Load(ctx, h, 0, 0); err != nil || string(got) != "0123456789" {
		t.Fatalf("AfterSave did not store the data: %q %v", got, err)
	}
	got, err := f.Load(ctx, h, 0, 0)
	if !errors.Is(err, io.ErrUnexpectedEOF) || string(got) != "01234" {
		t.Fatalf("ShortRead: %q %v", got, err)
	}
	if got, err := f.Load(ctx, h, 2, 3); err != nil || string(got) != "234" {
		t.Fatalf("second load: %q %v", got, err)
	}
}

func TestFaultyDelayHonoursContext(t *testing.T) {
	f := backend.NewFaulty(backend.NewMem(), 1)
	f.Add(backend.Fault{Ops: backend.OpStat | backend.OpList | backend.OpRemove, Delay: time.Hour})
	c, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := f.Stat(c, pack()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("delayed Stat: %v", err)
	}
	if time.Since(start) > 30*time.Second {
		t.Fatal("delay ignored the context")
	}
	f.Clear()
	if _, err := f.Stat(ctx, pack()); !backend.IsNotFound(err) {
		t.Fatalf("after Clear: %v", err)
	}
}

func TestFaultyListRemoveStat(t *testing.T) {
	f := backend.NewFaulty(backend.NewMem(), 1)
	h := pack()
	if err := f.Save(ctx, h, []byte("x")); err != nil {
		t.Fatal(err)
	}
	f.Add(backend.Fault{Ops: backend.OpList | backend.OpRemove | backend.OpStat, Prob: 1})
	called := false
	if err := f.List(ctx, backend.Packs, func(backend.FileInfo) error { called = true; return nil }); !errors.Is(err, backend.ErrInjected) || called {
		t.Fatalf("List: %v, fn called %v", err, called)
	}
	if err := f.Remove(ctx, h); !errors.Is(err, backend.ErrInjected) {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := f.Stat(ctx, h); !errors.Is(err, backend.ErrInjected) {
		t.Fatalf("Stat: %v", err)
	}
}

// --- Retry ---------------------------------------------------------------

func newRetry(b backend.Backend) *backend.Retry {
	r := backend.NewRetry(b)
	r.Backoff = time.Millisecond
	return r
}

func TestRetryRecoversTransientFailures(t *testing.T) {
	mem := backend.NewMem()
	f := backend.NewFaulty(mem, 3)
	f.Add(backend.Fault{Ops: backend.OpAll, Prob: 0.4})
	var retries int
	var mu sync.Mutex
	r := newRetry(f)
	r.Attempts = 20 // 0.4^20: never gives up in practice
	r.OnRetry = func(string, backend.Handle, int, error) { mu.Lock(); retries++; mu.Unlock() }
	var hs []backend.Handle
	for i := range 100 {
		h := pack()
		hs = append(hs, h)
		if err := r.Save(ctx, h, []byte{byte(i)}); err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
	}
	for i, h := range hs {
		got, err := r.Load(ctx, h, 0, 0)
		if err != nil || len(got) != 1 || got[0] != byte(i) {
			t.Fatalf("load %d: %v %v", i, got, err)
		}
		if _, err := r.Stat(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	if err := r.List(ctx, backend.Packs, func(backend.FileInfo) error { n++; return nil }); err != nil || n != 100 {
		t.Fatalf("List: %d files, %v", n, err)
	}
	for _, h := range hs {
		if err := r.Remove(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if f.Injected() == 0 || retries != f.Injected() {
		t.Fatalf("%d faults injected, %d retries reported", f.Injected(), retries)
	}
}

func TestRetryGivesUp(t *testing.T) {
	f := backend.NewFaulty(backend.NewMem(), 1)
	f.Add(backend.Fault{Ops: backend.OpSave, Prob: 1})
	r := newRetry(f)
	r.Attempts = 3
	err := r.Save(ctx, pack(), []byte("x"))
	if !errors.Is(err, backend.ErrInjected) || f.Injected() != 3 {
		t.Fatalf("err %v after %d attempts; want ErrInjected after 3", err, f.Injected())
	}
}

func TestRetryDoesNotRetryPermanentErrors(t *testing.T) {
	for _, perm := range []error{backend.ErrNotFound, context.Canceled, syscall.ENOSPC} {
		f := backend.NewFaulty(backend.NewMem(), 1)
		f.Add(backend.Fault{Ops: backend.OpAll, Prob: 1, Err: perm})
		r := newRetry(f)
		if err := r.Save(ctx, pack(), nil); !errors.Is(err, perm) || f.Injected() != 1 {
			t.Errorf("%v: Save tried %d times, err %v", perm, f.Injected(), err)
		}
	}
	// a genuine name clash on the first attempt is ErrExists, even for equal content
	mem := backend.NewMem()
	r := newRetry(mem)
	h := pack()
	if err := r.Save(ctx, h, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := r.Save(ctx, h, []byte("a")); !errors.Is(err, backend.ErrExists) {
		t.Fatalf("first-attempt clash: %v, want ErrExists", err)
	}
	if _, err := r.Load(ctx, pack(), 0, 0); !backend.IsNotFound(err) {
		t.Fatalf("missing file: %v", err)
	}
	// the caller's context stops the backoff
	f := backend.NewFaulty(backend.NewMem(), 1)
	f.Add(backend.Fault{Ops: backend.OpSave, Prob: 1})
	slow := backend.NewRetry(f)
	slow.Backoff = time.Hour
	c, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := slow.Save(c, pack(), nil); err == nil || f.Injected() != 1 {
		t.Fatalf("canceled retry: %v after %d attempts", err, f.Injected())
	}
}

func TestRetrySaveAfterLostAcknowledgement(t *testing.T) {
	mem := backend.NewMem()
	f := backend.NewFaulty(mem, 1)
	f.Add(backend.Fault{Ops: backend.OpSave, Nth: 1, AfterSave: true})
	r := newRetry(f)
	h := pack()
	// attempt 1 stores and fails; attempt 2 finds the identical file: success
	if err := r.Save(ctx, h, []byte("payload")); err != nil {
		t.Fatalf("retried save whose first attempt was stored: %v", err)
	}
	if got, _ := mem.Load(ctx, h, 0, 0); string(got) != "payload" {
		t.Fatalf("stored %q", got)
	}
}

func TestRetrySaveNeverOverwritesOtherContent(t *testing.T) {
	mem := backend.NewMem()
	h := pack()
	f := backend.NewFaulty(mem, 1)
	// attempt 1 fails without storing; meanwhile another writer takes the name
	f.Add(backend.Fault{Ops: backend.OpSave, Nth: 1})
	r := newRetry(f)
	r.OnRetry = func(string, backend.Handle, int, error) {
		if err := mem.Save(ctx, h, []byte("someone else")); err != nil {
			t.Error(err)
		}
	}
	err := r.Save(ctx, h, []byte("mine"))
	if !errors.Is(err, backend.ErrExists) {
		t.Fatalf("retry into a name holding other content: %v, want ErrExists", err)
	}
	if got, _ := mem.Load(ctx, h, 0, 0); string(got) != "someone else" {
		t.Fatalf("the other writer's file was changed to %q", got)
	}
}

func TestRetryRecoversShortReads(t *testing.T) {
	mem := backend.NewMem()
	h := pack()
	if err := mem.Save(ctx, h, []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	f := backend.NewFaulty(mem, 1)
	f.Add(backend.Fault{Ops: backend.OpLoad, Times: 2, Prob: 1, ShortRead: true})
	got, err := newRetry(f).Load(ctx, h, 1, 8)
	if err != nil || string(got) != "12345678" {
		t.Fatalf("%q %v", got, err)
	}
}

func TestRetryListDoesNotRepeatEntries(t *testing.T) {
	mem := backend.NewMem()
	for range 10 {
		if err := mem.Save(ctx, pack(), nil); err != nil {
			t.Fatal(err)
		}
	}
	f := backend.NewFaulty(mem, 1)
	f.Add(backend.Fault{Ops: backend.OpList, Nth: 1})
	seen := map[string]int{}
	if err := newRetry(f).List(ctx, backend.Packs, func(fi backend.FileInfo) error { seen[fi.Name]++; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 10 {
		t.Fatalf("listed %d files", len(seen))
	}
	for n, c := range seen {
		if c != 1 {
			t.Fatalf("%s listed %d times", n, c)
		}
	}
	stop := errors.New("stop")
	if err := newRetry(f).List(ctx, backend.Packs, func(backend.FileInfo) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("fn error: %v", err)
	}
}

func TestMarkPermanentIsNotRetried(t *testing.T) {
	denied := errors.New("access denied")
	if backend.Permanent(denied) {
		t.Fatal("a plain error is permanent")
	}
	err := fmt.Errorf("save: %w", backend.MarkPermanent(denied))
	if !backend.Permanent(err) || !errors.Is(err, denied) || err.Error() != "save: access denied" {
		t.Fatalf("marked error: permanent %v, is %v, %q", backend.Permanent(err), errors.Is(err, denied), err)
	}
	if backend.MarkPermanent(nil) != nil {
		t.Fatal("backend.MarkPermanent(nil) is not nil")
	}
}
