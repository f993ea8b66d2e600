package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"syscall"
	"time"
)

// Retry wraps a backend and retries calls that fail for a reason that may
// pass: anything but a Permanent error or the end of the caller's context.
// A per-request deadline that passed (ErrTimeout, or a
// context.DeadlineExceeded while the caller's context is still live) is
// retried; the caller's own cancel or deadline is not.
//
// The waits between attempts use decorrelated jitter: each wait is drawn
// from [Backoff, 3×previous wait], capped at MaxBackoff. It spreads the
// retries of many clients that failed together (every client of a bucket
// answered 503 SlowDown at once) as well as full jitter does, but never
// retries sooner than Backoff: a server that asked us to slow down is not
// hit again a microsecond later.
type Retry struct {
	Backend
	// Attempts is the number of tries per call (default 4).
	Attempts int
	// Backoff is the shortest wait between two tries (default 50ms).
	Backoff time.Duration
	// MaxBackoff caps one wait (0: no cap).
	MaxBackoff time.Duration
	// Budget bounds the time of one call over all its tries: no try
	// starts, and no wait begins, that would end past it (0: no budget).
	// A running try is cut by its request deadline, not by the budget.
	Budget time.Duration
	// OnRetry, if set, is told about every failure that is retried;
	// attempt is the number of the try that failed, the next is attempt+1.
	OnRetry func(op string, h Handle, attempt int, err error)

	// jitter returns a number in [0, 1); nil means math/rand/v2.
	jitter func() float64
}

// NewRetry wraps b with the default attempts and backoff and a cap of 30s
// on one wait.
func NewRetry(b Backend) *Retry {
	return &Retry{Backend: b, Attempts: 4, Backoff: 50 * time.Millisecond, MaxBackoff: 30 * time.Second}
}

// permanentError marks an error that retrying cannot cure (wrong
// credentials, a missing bucket, a request the server rejects as invalid).
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// MarkPermanent wraps err so that Permanent reports it: a backend calls it
// for failures that the same request would meet again. Nil stays nil.
func MarkPermanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// Permanent tells whether retrying err cannot help. A deadline that passed
// is not permanent by itself: the next request may well be answered in
// time. Retry tells the caller's own deadline apart by its context.
func Permanent(err error) bool {
	var pe permanentError
	return errors.As(err, &pe) || errors.Is(err, ErrExists) || errors.Is(err, ErrNotFound) ||
		errors.Is(err, context.Canceled) || errors.Is(err, syscall.ENOSPC)
}

// nextBackoff returns the wait after one of prev (0: the first wait).
func (r *Retry) nextBackoff(prev time.Duration) time.Duration {
	base := r.Backoff
	if base <= 0 {
		base = 50 * time.Millisecond
	}
	if r.MaxBackoff > 0 && base > r.MaxBackoff {
		return r.MaxBackoff
	}
	hi := 3 * max(prev, base)
	if r.MaxBackoff > 0 && hi > r.MaxBackoff {
		hi = r.MaxBackoff
	}
	f := r.jitter
	if f == nil {
		f = rand.Float64
	}
	return base + time.Duration(f()*float64(hi-base))
}

// do runs fn until it succeeds, fails permanently, the caller's context
// ends, or the attempts or the budget are used up.
func (r *Retry) do(ctx context.Context, op string, h Handle, fn func(attempt int) error) error {
	attempts := r.Attempts
	if attempts <= 0 {
		attempts = 4
	}
	start := time.Now()
	var backoff time.Duration
	for attempt := 1; ; attempt++ {
		err := fn(attempt)
		if err == nil || ctx.Err() != nil || Permanent(err) {
			return err
		}
		if attempt >= attempts {
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempts)
		}
		backoff = r.nextBackoff(backoff)
		if spent := time.Since(start); r.Budget > 0 && spent+backoff >= r.Budget {
			return fmt.Errorf("%w (gave up after %d attempts in %v: the retry budget of a call is %v)",
				err, attempt, spent.Round(time.Millisecond), r.Budget)
		}
		if r.OnRetry != nil {
			r.OnRetry(op, h, attempt, err)
		}
		if werr := wait(ctx, backoff); werr != nil {
			return err
		}
	}
}

// Save implements Backend. A failed Save may have stored the file all the
// same (a lost acknowledgement): when a retry finds the name taken, it
// succeeds only if the stored content is exactly data, so nothing is ever
// overwritten and a genuine name clash still reports ErrExists.
func (r *Retry) Save(ctx context.Context, h Handle, data []byte) error {
	return r.do(ctx, "save", h, func(attempt int) error {
		err := r.Backend.Save(ctx, h, data)
		if attempt == 1 || !errors.Is(err, ErrExists) {
			return err
		}
		stored, lerr := r.Backend.Load(ctx, h, 0, 0)
		if lerr != nil {
			return fmt.Errorf("save %s: exists after a failed attempt and cannot be compared: %w", h, lerr)
		}
		if !bytes.Equal(stored, data) {
			return err
		}
		return nil
	})
}

// Load implements Backend.
func (r *Retry) Load(ctx context.Context, h Handle, offset, length int64) ([]byte, error) {
	var out []byte
	err := r.do(ctx, "load", h, func(int) error {
		var err error
		out, err = r.Backend.Load(ctx, h, offset, length)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LoadInto implements Backend.
func (r *Retry) LoadInto(ctx context.Context, h Handle, offset int64, buf []byte) error {
	return r.do(ctx, "load", h, func(int) error {
		return r.Backend.LoadInto(ctx, h, offset, buf)
	})
}

// Stat implements Backend.
func (r *Retry) Stat(ctx context.Context, h Handle) (FileInfo, error) {
	var fi FileInfo
	err := r.do(ctx, "stat", h, func(int) error {
		var err error
		fi, err = r.Backend.Stat(ctx, h)
		return err
	})
	return fi, err
}

// List implements Backend. The listing is collected whole before fn sees
// it, so a retried listing never shows fn a file twice; errors of fn are
// not retried.
func (r *Retry) List(ctx context.Context, k Kind, fn func(FileInfo) error) error {
	var infos []FileInfo
	err := r.do(ctx, "list", Handle{Kind: k}, func(int) error {
		infos = infos[:0]
		return r.Backend.List(ctx, k, func(fi FileInfo) error {
			infos = append(infos, fi)
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, fi := range infos {
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}

// Remove implements Backend.
func (r *Retry) Remove(ctx context.Context, h Handle) error {
	return r.do(ctx, "remove", h, func(int) error { return r.Backend.Remove(ctx, h) })
}

// Create implements Creator when the wrapped backend does.
func (r *Retry) Create(ctx context.Context) error {
	c, ok := r.Backend.(Creator)
	if !ok {
		return nil
	}
	return r.do(ctx, "create", Handle{}, func(int) error { return c.Create(ctx) })
}

// SyncRemovals implements RemovalSyncer when the wrapped backend does.
func (r *Retry) SyncRemovals(ctx context.Context, k Kind) error {
	return r.do(ctx, "sync", Handle{Kind: k}, func(int) error { return SyncRemovals(ctx, r.Backend, k) })
}

// Retainer implements RetainerWrapper: the object lock calls are retried
// as the others. Setting the same retention twice is harmless, so a
// SetRetention whose answer was lost is simply sent again.
func (r *Retry) Retainer() (Retainer, bool) {
	next, ok := AsRetainer(r.Backend)
	if !ok {
		return nil, false
	}
	return retryRetainer{r: r, next: next}, true
}

type retryRetainer struct {
	r    *Retry
	next Retainer
}

func (x retryRetainer) ObjectLock(ctx context.Context) (ObjectLock, error) {
	var ol ObjectLock
	err := x.r.do(ctx, "object lock", Handle{}, func(int) error {
		var err error
		ol, err = x.next.ObjectLock(ctx)
		return err
	})
	return ol, err
}

func (x retryRetainer) RetainWrites(w WriteRetention) { x.next.RetainWrites(w) }

func (x retryRetainer) Retention(ctx context.Context, h Handle) (Retention, error) {
	var ret Retention
	err := x.r.do(ctx, "retention", h, func(int) error {
		var err error
		ret, err = x.next.Retention(ctx, h)
		return err
	})
	return ret, err
}

func (x retryRetainer) SetRetention(ctx context.Context, h Handle, ret Retention) error {
	return x.r.do(ctx, "set retention", h, func(int) error { return x.next.SetRetention(ctx, h, ret) })
}
