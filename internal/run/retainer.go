package run

import (
	"context"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

// An S3 repository's object lock calls (backend.Retainer) go to the store
// itself: they are few (init, and prune's checks and extensions, which
// bound their own concurrency), and each is bounded by its own timeout.
// The retention of Saves is set on the store, under the policy and the
// cache, so every write carries it.

var _ backend.Retainer = remoteRepo{}

// ObjectLock implements backend.Retainer.
func (r remoteRepo) ObjectLock(ctx context.Context) (backend.ObjectLock, error) {
	return r.raw.ObjectLock(ctx)
}

// RetainWrites implements backend.Retainer.
func (r remoteRepo) RetainWrites(w backend.WriteRetention) { r.raw.RetainWrites(w) }

// Retention implements backend.Retainer.
func (r remoteRepo) Retention(ctx context.Context, h backend.Handle) (backend.Retention, error) {
	return r.raw.Retention(ctx, h)
}

// SetRetention implements backend.Retainer.
func (r remoteRepo) SetRetention(ctx context.Context, h backend.Handle, ret backend.Retention) error {
	return r.raw.SetRetention(ctx, h, ret)
}
