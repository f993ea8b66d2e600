package backend

import (
	"context"
	"fmt"
)

// Limit wraps a backend and bounds the calls in flight: transfers (Save,
// Load, LoadInto) and metadata calls (Stat, List, Remove, Create,
// SyncRemovals, the object lock calls) each have their own number of slots. Two pools, because a
// Stat or a Remove takes one round trip and no bandwidth: queued behind a
// dozen pack uploads on a slow link it would wait minutes for nothing,
// and prune's parallel removals would stall the backup's uploads.
//
// A call waiting for a slot gives up as soon as its context ends.
type Limit struct {
	Backend
	transfers, metadata chan struct{}
}

// NewLimit wraps b with the given numbers of slots; 0 or less: no bound
// for that kind of call.
func NewLimit(b Backend, transfers, metadata int) *Limit {
	l := &Limit{Backend: b}
	if transfers > 0 {
		l.transfers = make(chan struct{}, transfers)
	}
	if metadata > 0 {
		l.metadata = make(chan struct{}, metadata)
	}
	return l
}

// acquire takes a slot of sem (nil: unbounded) and returns its release.
func acquire(ctx context.Context, sem chan struct{}, op string, h fmt.Stringer) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, h, err)
	}
	if sem == nil {
		return func() {}, nil
	}
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%s %s: waiting for a free request slot: %w", op, h, ctx.Err())
	}
}

// Save implements Backend.
func (l *Limit) Save(ctx context.Context, h Handle, data []byte) error {
	release, err := acquire(ctx, l.transfers, "save", h)
	if err != nil {
		return err
	}
	defer release()
	return l.Backend.Save(ctx, h, data)
}

// Load implements Backend.
func (l *Limit) Load(ctx context.Context, h Handle, offset, length int64) ([]byte, error) {
	release, err := acquire(ctx, l.transfers, "load", h)
	if err != nil {
		return nil, err
	}
	defer release()
	return l.Backend.Load(ctx, h, offset, length)
}

// LoadInto implements Backend.
func (l *Limit) LoadInto(ctx context.Context, h Handle, offset int64, buf []byte) error {
	release, err := acquire(ctx, l.transfers, "load", h)
	if err != nil {
		return err
	}
	defer release()
	return l.Backend.LoadInto(ctx, h, offset, buf)
}

// Stat implements Backend.
func (l *Limit) Stat(ctx context.Context, h Handle) (FileInfo, error) {
	release, err := acquire(ctx, l.metadata, "stat", h)
	if err != nil {
		return FileInfo{}, err
	}
	defer release()
	return l.Backend.Stat(ctx, h)
}

// List implements Backend. The slot is held while fn runs: wrap Limit in
// Retry, which collects the listing before calling fn.
func (l *Limit) List(ctx context.Context, k Kind, fn func(FileInfo) error) error {
	release, err := acquire(ctx, l.metadata, "list", kindName(k))
	if err != nil {
		return err
	}
	defer release()
	return l.Backend.List(ctx, k, fn)
}

// Remove implements Backend.
func (l *Limit) Remove(ctx context.Context, h Handle) error {
	release, err := acquire(ctx, l.metadata, "remove", h)
	if err != nil {
		return err
	}
	defer release()
	return l.Backend.Remove(ctx, h)
}

// Create implements Creator when the wrapped backend does.
func (l *Limit) Create(ctx context.Context) error {
	c, ok := l.Backend.(Creator)
	if !ok {
		return nil
	}
	release, err := acquire(ctx, l.metadata, "create", kindName("repository"))
	if err != nil {
		return err
	}
	defer release()
	return c.Create(ctx)
}

// SyncRemovals implements RemovalSyncer when the wrapped backend does.
func (l *Limit) SyncRemovals(ctx context.Context, k Kind) error {
	if _, ok := l.Backend.(RemovalSyncer); !ok {
		return nil
	}
	release, err := acquire(ctx, l.metadata, "sync removals of", kindName(k))
	if err != nil {
		return err
	}
	defer release()
	return SyncRemovals(ctx, l.Backend, k)
}

// kindName names a folder in messages of calls that have no file.
type kindName string

func (k kindName) String() string { return string(k) }

// Retainer implements RetainerWrapper: each object lock call takes a
// metadata slot (one small round trip, as a Stat).
func (l *Limit) Retainer() (Retainer, bool) {
	next, ok := AsRetainer(l.Backend)
	if !ok {
		return nil, false
	}
	return limitRetainer{l: l, next: next}, true
}

type limitRetainer struct {
	l    *Limit
	next Retainer
}

func (x limitRetainer) ObjectLock(ctx context.Context) (ObjectLock, error) {
	release, err := acquire(ctx, x.l.metadata, "object lock of", kindName("repository"))
	if err != nil {
		return ObjectLock{}, err
	}
	defer release()
	return x.next.ObjectLock(ctx)
}

func (x limitRetainer) RetainWrites(w WriteRetention) { x.next.RetainWrites(w) }

func (x limitRetainer) Retention(ctx context.Context, h Handle) (Retention, error) {
	release, err := acquire(ctx, x.l.metadata, "retention of", h)
	if err != nil {
		return Retention{}, err
	}
	defer release()
	return x.next.Retention(ctx, h)
}

func (x limitRetainer) SetRetention(ctx context.Context, h Handle, ret Retention) error {
	release, err := acquire(ctx, x.l.metadata, "set retention of", h)
	if err != nil {
		return err
	}
	defer release()
	return x.next.SetRetention(ctx, h, ret)
}
