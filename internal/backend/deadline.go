package backend

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrTimeout is the error of a request that its deadline cut. It is
// transient: Retry tries the request again.
var ErrTimeout = errors.New("request deadline passed")

// Deadline wraps a backend and gives every request a deadline that grows
// with its size: Base plus the bytes at MinRate. A small request on a dead
// connection fails after about Base; a large pack on a slow but moving link
// still has the time it needs. (A transfer that stops moving is cut sooner
// by the connection's watchdog, package netwatch.)
//
// The deadline works through the request's context: the backend must
// honour it. A call that ignores its context is not abandoned, because an
// abandoned Save or LoadInto would go on using the caller's buffer after
// returning.
type Deadline struct {
	Backend
	// Base is the time any request may take (0: no deadlines at all).
	Base time.Duration
	// MinRate is the slowest transfer in bytes per second that is not
	// taken for a failure (0: the size adds nothing).
	MinRate int64
	// UnknownSize is the size assumed for a Load to the end of a file.
	UnknownSize int64
	// ListTimeout is the deadline of a whole listing, which may be many
	// pages (0: Base).
	ListTimeout time.Duration
}

// timeout returns the deadline of a request of n bytes.
func (d *Deadline) timeout(n int64) time.Duration {
	t := d.Base
	if d.MinRate > 0 && n > 0 {
		t += time.Duration(float64(n) / float64(d.MinRate) * float64(time.Second))
	}
	return t
}

// run calls fn under a deadline of t and names a deadline that passed.
func (d *Deadline) run(ctx context.Context, t time.Duration, op string, what fmt.Stringer, fn func(context.Context) error) error {
	if d.Base <= 0 {
		return fn(ctx)
	}
	rctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	err := fn(rctx)
	if err != nil && ctx.Err() == nil && errors.Is(rctx.Err(), context.DeadlineExceeded) {
		if errors.Is(err, context.DeadlineExceeded) { // says nothing more
			return fmt.Errorf("%s %s: %w: no answer within %v", op, what, ErrTimeout, t.Round(time.Millisecond))
		}
		return fmt.Errorf("%s %s: %w: no answer within %v (%v)", op, what, ErrTimeout, t.Round(time.Millisecond), err)
	}
	return err
}

// Save implements Backend.
func (d *Deadline) Save(ctx context.Context, h Handle, data []byte) error {
	return d.run(ctx, d.timeout(int64(len(data))), "save", h, func(ctx context.Context) error {
		return d.Backend.Save(ctx, h, data)
	})
}

// Load implements Backend.
func (d *Deadline) Load(ctx context.Context, h Handle, offset, length int64) ([]byte, error) {
	n := length
	if n <= 0 {
		n = d.UnknownSize
	}
	var out []byte
	err := d.run(ctx, d.timeout(n), "load", h, func(ctx context.Context) error {
		var err error
		out, err = d.Backend.Load(ctx, h, offset, length)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LoadInto implements Backend.
func (d *Deadline) LoadInto(ctx context.Context, h Handle, offset int64, buf []byte) error {
	return d.run(ctx, d.timeout(int64(len(buf))), "load", h, func(ctx context.Context) error {
		return d.Backend.LoadInto(ctx, h, offset, buf)
	})
}

// Stat implements Backend.
func (d *Deadline) Stat(ctx context.Context, h Handle) (FileInfo, error) {
	var fi FileInfo
	err := d.run(ctx, d.Base, "stat", h, func(ctx context.Context) error {
		var err error
		fi, err = d.Backend.Stat(ctx, h)
		return err
	})
	return fi, err
}

// List implements Backend.
func (d *Deadline) List(ctx context.Context, k Kind, fn func(FileInfo) error) error {
	t := d.ListTimeout
	if t <= 0 {
		t = d.Base
	}
	return d.run(ctx, t, "list", kindName(k), func(ctx context.Context) error {
		return d.Backend.List(ctx, k, fn)
	})
}

// Remove implements Backend.
func (d *Deadline) Remove(ctx context.Context, h Handle) error {
	return d.run(ctx, d.Base, "remove", h, func(ctx context.Context) error {
		return d.Backend.Remove(ctx, h)
	})
}

// Create implements Creator when the wrapped backend does.
func (d *Deadline) Create(ctx context.Context) error {
	c, ok := d.Backend.(Creator)
	if !ok {
		return nil
	}
	return d.run(ctx, d.Base, "create", kindName("repository"), c.Create)
}

// SyncRemovals implements RemovalSyncer when the wrapped backend does.
func (d *Deadline) SyncRemovals(ctx context.Context, k Kind) error {
	return d.run(ctx, d.Base, "sync removals of", kindName(k), func(ctx context.Context) error {
		return SyncRemovals(ctx, d.Backend, k)
	})
}

// Retainer implements RetainerWrapper: each object lock call has the
// deadline of a Stat.
func (d *Deadline) Retainer() (Retainer, bool) {
	next, ok := AsRetainer(d.Backend)
	if !ok {
		return nil, false
	}
	return deadlineRetainer{d: d, next: next}, true
}

type deadlineRetainer struct {
	d    *Deadline
	next Retainer
}

func (x deadlineRetainer) ObjectLock(ctx context.Context) (ObjectLock, error) {
	var ol ObjectLock
	err := x.d.run(ctx, x.d.Base, "object lock of", kindName("repository"), func(ctx context.Context) error {
		var err error
		ol, err = x.next.ObjectLock(ctx)
		return err
	})
	return ol, err
}

func (x deadlineRetainer) RetainWrites(w WriteRetention) { x.next.RetainWrites(w) }

func (x deadlineRetainer) Retention(ctx context.Context, h Handle) (Retention, error) {
	var ret Retention
	err := x.d.run(ctx, x.d.Base, "retention of", h, func(ctx context.Context) error {
		var err error
		ret, err = x.next.Retention(ctx, h)
		return err
	})
	return ret, err
}

func (x deadlineRetainer) SetRetention(ctx context.Context, h Handle, ret Retention) error {
	return x.d.run(ctx, x.d.Base, "set retention of", h, func(ctx context.Context) error {
		return x.next.SetRetention(ctx, h, ret)
	})
}
