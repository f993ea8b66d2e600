package s3

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

// The object lock calls of an immutable repository (docs/format.md,
// Immutable repositories): retention on every Save of a retained kind,
// removals of every version of a key (so that a retained one is refused,
// not hidden behind a delete marker), and reading and extending
// retention dates.

var _ backend.Retainer = (*Backend)(nil)

// The calls are bounded, retried and counted by the layers above the store
// (backend.RetainerWrapper), as every other request.

// ObjectLock implements backend.Retainer: whether the bucket was created
// with object lock, and its default retention rule.
func (b *Backend) ObjectLock(ctx context.Context) (backend.ObjectLock, error) {
	if err := b.checkBucket(ctx); err != nil {
		return backend.ObjectLock{}, err
	}
	enabled, mode, validity, unit, err := b.client.GetObjectLockConfig(ctx, b.loc.Bucket)
	if err != nil {
		resp := minio.ToErrorResponse(err)
		if resp.Code == "ObjectLockConfigurationNotFoundError" || resp.StatusCode == http.StatusNotFound {
			return backend.ObjectLock{}, nil
		}
		return backend.ObjectLock{}, fmt.Errorf("object lock configuration of bucket %q: %w", b.loc.Bucket, b.classify(err))
	}
	ol := backend.ObjectLock{Enabled: enabled == "Enabled"}
	if mode != nil && validity != nil && unit != nil && *validity > 0 {
		day := 24 * time.Hour
		if *unit == minio.Years {
			day *= 365
		}
		ol.Default = backend.WriteRetention{Mode: backend.RetentionMode(mode.String()), Period: time.Duration(*validity) * day}
	}
	return ol, nil
}

// RetainWrites implements backend.Retainer.
func (b *Backend) RetainWrites(w backend.WriteRetention) {
	if w.Period <= 0 {
		b.retain.Store(nil)
		return
	}
	b.retain.Store(&w)
}

// retainSave sets the retention of a Save of h into opts.
func (b *Backend) retainSave(h backend.Handle, opts *minio.PutObjectOptions) {
	w := b.retain.Load()
	if w == nil || !backend.RetainedKind(h.Kind) {
		return
	}
	opts.Mode = minio.RetentionMode(w.Mode)
	opts.RetainUntilDate = w.Until()
}

// Retention implements backend.Retainer, from the object's HEAD (which
// carries the object lock headers to an identity that may read them).
func (b *Backend) Retention(ctx context.Context, h backend.Handle) (backend.Retention, error) {
	oi, err := b.client.StatObject(ctx, b.loc.Bucket, b.key(h), minio.StatObjectOptions{})
	if err != nil {
		return backend.Retention{}, b.fail("retention of", h, b.headError(ctx, err))
	}
	return parseRetention(h, oi.Metadata)
}

func parseRetention(h backend.Handle, hdr http.Header) (backend.Retention, error) {
	mode, date := hdr.Get("X-Amz-Object-Lock-Mode"), hdr.Get("X-Amz-Object-Lock-Retain-Until-Date")
	if date == "" {
		return backend.Retention{}, nil
	}
	until, err := time.Parse(time.RFC3339, date)
	if err != nil {
		return backend.Retention{}, fmt.Errorf("retention of %s: the server's retain-until date %q: %w", h, date, err)
	}
	return backend.Retention{Mode: backend.RetentionMode(mode), Until: until}, nil
}

// SetRetention implements backend.Retainer with PutObjectRetention.
func (b *Backend) SetRetention(ctx context.Context, h backend.Handle, r backend.Retention) error {
	mode := minio.RetentionMode(r.Mode)
	until := r.Until.UTC()
	err := b.client.PutObjectRetention(ctx, b.loc.Bucket, b.key(h), minio.PutObjectRetentionOptions{Mode: &mode, RetainUntilDate: &until})
	if err != nil {
		if code(err) == "AccessDenied" {
			// shortening a retention is refused the same way as missing rights
			return b.fail("extend retention of", h, backend.MarkPermanent(fmt.Errorf("refused by %s (an earlier date than the object's, or no s3:PutObjectRetention right): %w", b.loc.Endpoint, err)))
		}
		return b.fail("extend retention of", h, b.classify(err))
	}
	return nil
}

// removeVersions deletes every version of h's key (and delete markers),
// each by its version id: for good, so that the server refuses what a
// retention protects. A plain DELETE in a versioned bucket would only add
// a delete marker and hide the file, which still takes its space.
func (b *Backend) removeVersions(ctx context.Context, h backend.Handle) error {
	key := b.key(h)
	var versions []minio.ObjectInfo
	for oi := range b.client.ListObjectsIter(ctx, b.loc.Bucket, minio.ListObjectsOptions{Prefix: key, WithVersions: true, Recursive: true}) {
		if oi.Err != nil {
			return b.fail("remove", h, b.classify(oi.Err))
		}
		if oi.Key == key {
			versions = append(versions, oi)
		}
	}
	for _, v := range versions {
		err := b.client.RemoveObject(ctx, b.loc.Bucket, key, minio.RemoveObjectOptions{VersionID: v.VersionID})
		if err == nil || code(err) == minio.NoSuchKey || code(err) == "NoSuchVersion" {
			continue
		}
		if code(err) == "AccessDenied" && !v.IsDeleteMarker {
			r, rerr := b.versionRetention(ctx, key, v.VersionID)
			if rerr == nil && !r.Until.IsZero() {
				return b.fail("remove", h, backend.MarkPermanent(&backend.RetainedError{Handle: h, Retention: r}))
			}
		}
		return b.fail("remove", h, b.classify(err))
	}
	return nil
}

func (b *Backend) versionRetention(ctx context.Context, key, version string) (backend.Retention, error) {
	mode, until, err := b.client.GetObjectRetention(ctx, b.loc.Bucket, key, version)
	if err != nil || until == nil {
		return backend.Retention{}, err
	}
	r := backend.Retention{Until: *until}
	if mode != nil {
		r.Mode = backend.RetentionMode(mode.String())
	}
	return r, nil
}
