package backend

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// RetentionMode is how strictly a store keeps a retained file (S3 object
// lock's modes).
type RetentionMode string

// The retention modes.
const (
	// Compliance: nobody, the bucket's owner included, can delete the file
	// or shorten its retention before the date.
	Compliance RetentionMode = "COMPLIANCE"
	// Governance: an identity with the right to bypass governance
	// retention (s3:BypassGovernanceRetention) can; stillpoint never does.
	Governance RetentionMode = "GOVERNANCE"
)

// ParseRetentionMode reads "compliance" or "governance" (any case).
func ParseRetentionMode(s string) (RetentionMode, error) {
	switch m := RetentionMode(upper(s)); m {
	case Compliance, Governance:
		return m, nil
	}
	return "", fmt.Errorf("retention mode %q: want compliance or governance", s)
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// Retention is how long a file is kept from deletion. A zero Until means
// not retained.
type Retention struct {
	Mode  RetentionMode
	Until time.Time
}

// Retained tells whether the retention still holds at now.
func (r Retention) Retained(now time.Time) bool { return !r.Until.IsZero() && r.Until.After(now) }

// WriteRetention is the retention every later Save of a retained kind
// carries: until the moment of the write (Now) plus Period.
type WriteRetention struct {
	Mode   RetentionMode
	Period time.Duration
	// Now is the clock of the dates (nil: time.Now); tests move it.
	Now func() time.Time
}

// Until is the retention date of a file written now.
func (w WriteRetention) Until() time.Time {
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	// whole seconds: S3 keeps retention dates to the second, and a date
	// read back must compare equal to the one written
	return now().Add(w.Period).UTC().Truncate(time.Second).Add(time.Second)
}

// RetainedKind tells whether files of kind k are written with a retention
// in an immutable repository. Locks and prune's marks are not: they must
// be removable at once (a lock at the end of every command, a mark when
// its sweep is done), and losing one only keeps data (docs/format.md,
// Immutable repositories). Neither are drill results, which restore
// nothing.
func RetainedKind(k Kind) bool {
	switch k {
	case Config, Keys, Packs, Indexes, Snapshots:
		return true
	}
	return false
}

// ErrRetained means the store refused to delete a file because its
// retention has not passed.
var ErrRetained = errors.New("retained by the storage's object lock")

// RetainedError is a removal the store refused: the file is retained
// until Until (zero when the store did not say).
type RetainedError struct {
	Handle Handle
	Retention
}

func (e *RetainedError) Error() string {
	name := e.Handle.String()
	if e.Handle.Kind == Config {
		name = "config"
	}
	if e.Until.IsZero() {
		return fmt.Sprintf("%s is retained (object lock): the storage refused to delete it", name)
	}
	return fmt.Sprintf("%s is retained until %s (object lock, %s): the storage refuses to delete it before then",
		name, e.Until.UTC().Format(time.RFC3339), e.Mode)
}

// Is makes errors.Is(err, ErrRetained) true.
func (e *RetainedError) Is(target error) bool { return target == ErrRetained }

// ObjectLock describes a store's object lock settings.
type ObjectLock struct {
	// Enabled: the store keeps retention dates (an S3 bucket created with
	// object lock).
	Enabled bool
	// Default is the retention the store gives a file written without one
	// (a bucket's default retention rule); zero Period: none.
	Default WriteRetention
}

// Retainer is implemented by storage that can keep a file from deletion
// until a date (S3 object lock). The repository uses it when its config
// says it is immutable (docs/format.md, Immutable repositories).
//
// Rules:
//   - After RetainWrites, every Save of a file of a RetainedKind carries the
//     retention (other kinds carry none), and Remove deletes the file for
//     good (every version of it), so that what a retention protects is
//     refused with a *RetainedError rather than hidden.
//   - SetRetention only extends: asking for an earlier date than the file
//     has is an error of the store, which keeps the later one.
//   - All methods are safe for concurrent use.
type Retainer interface {
	// ObjectLock reports the store's object lock settings.
	ObjectLock(ctx context.Context) (ObjectLock, error)
	// RetainWrites sets the retention of later Saves (see the rules).
	RetainWrites(w WriteRetention)
	// Retention returns h's retention (zero Until: none), or ErrNotFound.
	Retention(ctx context.Context, h Handle) (Retention, error)
	// SetRetention sets h's retention to r.
	SetRetention(ctx context.Context, h Handle, r Retention) error
}

// RetainerWrapper is implemented by a backend that wraps another (the
// policy's layers, the meter, the cache): it returns the object lock
// calls of the backend it wraps passed through its own layer, so that they
// are retried, bounded, timed and counted as every other request, or
// false when that backend has none.
type RetainerWrapper interface {
	Retainer() (Retainer, bool)
}

// AsRetainer returns b's Retainer, if it has one, through b's wrappers.
func AsRetainer(b Backend) (Retainer, bool) {
	if w, ok := b.(RetainerWrapper); ok {
		return w.Retainer()
	}
	r, ok := b.(Retainer)
	return r, ok
}
