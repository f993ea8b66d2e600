package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

// LockInfo is the content of a lock file. Locks are plaintext so that a
// stale one can be seen and removed without the key.
type LockInfo struct {
	Name      string `json:"-"`
	Exclusive bool   `json:"exclusive"`
	// Prune: a prune's lock, which excludes another prune but not backups.
	Prune bool `json:"prune,omitempty"`
	// Session stays the same when the lock is rewritten, so a prune's mark
	// can wait for its holder (docs/format.md, Prune).
	Session string    `json:"session,omitempty"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	Time    time.Time `json:"time"`
}

// A lock not refreshed for lockStaleAge is stale even if its host is
// another machine whose processes we cannot see. Its holder renews it every
// lockRefresh, every lockRetry after a failed renewal, and gives it up as
// lost once lockLostAge passed without a renewal: before another client
// may take it for stale, the holder stops writing (ErrLockLost).
var (
	lockRefresh  = 5 * time.Minute
	lockRetry    = 30 * time.Second
	lockLostAge  = 20 * time.Minute
	lockStaleAge = 30 * time.Minute
)

// ErrLockLost is returned by the calls that would commit data (index
// files, snapshots, prune's removals) once this process's lock could not be
// renewed for long enough that other clients may take it for stale: a
// prune elsewhere may then remove what this run relies on.
var ErrLockLost = errors.New("the repository lock was lost")

// lostLock says why; it wraps ErrLockLost.
type lostLock struct {
	since time.Duration
	last  error
}

func (e *lostLock) Error() string {
	return fmt.Sprintf("%v: it could not be renewed for %s (last error: %v), so other clients may take it for stale; "+
		"nothing more is committed by this run (what it uploaded is left for prune)", ErrLockLost, e.since.Round(time.Second), e.last)
}
func (e *lostLock) Unwrap() error { return ErrLockLost }

// lockErr is the error of a lost lock of this repository, or nil.
func (r *Repository) lockErr() error {
	if e := r.lost.Load(); e != nil {
		return *e
	}
	return nil
}

// Stale tells whether the lock's holder is gone.
func (l *LockInfo) Stale() bool {
	host, _ := os.Hostname()
	if l.Host == host {
		return !processAlive(l.PID)
	}
	return time.Since(l.Time) > lockStaleAge
}

func (l *LockInfo) String() string {
	kind := "shared"
	switch {
	case l.Exclusive:
		kind = "exclusive"
	case l.Prune:
		kind = "prune"
	}
	return fmt.Sprintf("%s lock by %q (pid %d on %s) since %s", kind, l.Command, l.PID, l.Host, l.Time.Local().Format(time.DateTime))
}

// ErrLocked means another process holds a conflicting lock.
type ErrLocked struct {
	Holder *LockInfo
}

func (e *ErrLocked) Error() string {
	msg := "repository is locked: " + e.Holder.String()
	if e.Holder.Stale() {
		msg += "; its process is gone: remove the stale lock with `stillpoint unlock`"
	}
	return msg
}

// Lock is a held repository lock; Unlock releases it.
type Lock struct {
	r      *Repository
	mu     sync.Mutex
	info   LockInfo
	cancel context.CancelFunc
	done   chan struct{}
}

// ListLocks returns every lock file.
func ListLocks(ctx context.Context, be backend.Backend) ([]*LockInfo, error) {
	return listLocks(ctx, be, "")
}

// listLocks is ListLocks without the lock named own, which is not read.
func listLocks(ctx context.Context, be backend.Backend, own string) ([]*LockInfo, error) {
	var out []*LockInfo
	err := be.List(ctx, backend.Locks, func(fi backend.FileInfo) error {
		if fi.Name == own && own != "" {
			return nil
		}
		data, err := backend.ReadAll(ctx, be, backend.Handle{Kind: backend.Locks, Name: fi.Name})
		if err != nil {
			if backend.IsNotFound(err) {
				return nil
			}
			return err
		}
		var li LockInfo
		if json.Unmarshal(data, &li) != nil {
			li = LockInfo{Host: "?", Command: "damaged lock file"}
		}
		li.Name = fi.Name
		out = append(out, &li)
		return nil
	})
	return out, err
}

// Live tells whether the lock shows a holder that is there: a process
// alive on this host, or a lock of another host renewed recently enough
// (its holder renews every lockRefresh, and again after lockRetry).
func (l *LockInfo) Live() bool {
	host, _ := os.Hostname()
	if l.Host == host {
		return processAlive(l.PID)
	}
	return time.Since(l.Time) <= lockRefresh+2*lockRetry
}

// LockRemoval chooses the locks RemoveLocks removes.
type LockRemoval int

const (
	// StaleLocks: the locks whose holder is gone. A prune counts them as
	// gone already, so removing them changes none of its decisions.
	StaleLocks LockRemoval = iota
	// UnlessLive: every lock but the live ones (Live), such as another
	// host's that crashed a few minutes ago. A live holder keeps its lock:
	// a prune's mark waits for it (docs/format.md, Prune).
	UnlessLive
	// AllLocks: every lock, live ones too. A prune may then delete what a
	// running backup relies on: only when its holder is known to be gone.
	AllLocks
)

// RemoveLocks deletes the locks which chooses and returns what it removed.
func RemoveLocks(ctx context.Context, be backend.Backend, which LockRemoval) ([]*LockInfo, error) {
	locks, err := ListLocks(ctx, be)
	if err != nil {
		return nil, err
	}
	var removed []*LockInfo
	for _, l := range locks {
		if which == AllLocks || l.Stale() || (which == UnlessLive && !l.Live()) {
			if err := be.Remove(ctx, backend.Handle{Kind: backend.Locks, Name: l.Name}); err != nil {
				if errors.Is(err, backend.ErrDenied) {
					return removed, &appendOnly{command: "unlock", err: err}
				}
				return removed, err
			}
			removed = append(removed, l)
		}
	}
	return removed, nil
}

// Lock takes a shared (backup, restore, check) or exclusive (prune --now)
// lock. Once the lock is visible it reads the prune marks and the index
// again, so that what the caller treats as stored is what a prune that
// does not wait for this lock has not marked (docs/format.md, Prune).
func (r *Repository) Lock(ctx context.Context, exclusive bool, command string) (*Lock, error) {
	return r.lock(ctx, LockInfo{Exclusive: exclusive, Command: command})
}

// LockPrune takes a prune lock: backups and restores go on, another prune
// or an exclusive lock is refused.
func (r *Repository) LockPrune(ctx context.Context, command string) (*Lock, error) {
	return r.lock(ctx, LockInfo{Prune: true, Command: command})
}

func (r *Repository) lock(ctx context.Context, info LockInfo) (*Lock, error) {
	if err := r.conflict(ctx, info, ""); err != nil {
		return nil, err
	}
	info.Host, _ = os.Hostname()
	info.PID = os.Getpid()
	info.Session = NewRandomID().String()[:32]
	l := &Lock{r: r, info: info}
	if err := l.write(ctx); err != nil {
		return nil, err
	}
	// Two processes may have passed the first check at once: check again now
	// that ours is visible, and back off if there is a conflict.
	if err := r.conflict(ctx, info, l.info.Name); err != nil {
		_ = r.be.Remove(ctx, backend.Handle{Kind: backend.Locks, Name: l.info.Name})
		return nil, err
	}
	if err := r.refreshView(ctx); err != nil {
		_ = r.be.Remove(ctx, backend.Handle{Kind: backend.Locks, Name: l.info.Name})
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.done = cancel, make(chan struct{})
	go l.refresh(rctx)
	return l, nil
}

// Session is the id that names the lock's holder across rewrites.
func (l *Lock) Session() string { return l.info.Session }

// conflict finds a lock that excludes want: an exclusive lock excludes
// every other, a prune lock another prune's.
func (r *Repository) conflict(ctx context.Context, want LockInfo, own string) error {
	locks, err := listLocks(ctx, r.be, own)
	if err != nil {
		return fmt.Errorf("read locks: %w", err)
	}
	for _, l := range locks {
		if want.Prune && l.Prune && !l.Exclusive && l.Stale() {
			// a prune that was killed: its work is in its marks, which
			// this prune completes; its lock excluded only prunes
			continue
		}
		if want.Exclusive || l.Exclusive || (want.Prune && l.Prune) {
			return &ErrLocked{Holder: l}
		}
	}
	return nil
}

func (l *Lock) write(ctx context.Context) error {
	l.info.Time = time.Now().UTC()
	data, _ := json.Marshal(&l.info)
	name := NewRandomID().String()
	if err := l.r.be.Save(ctx, backend.Handle{Kind: backend.Locks, Name: name}, data); err != nil {
		return fmt.Errorf("write lock: %w", err)
	}
	l.info.Name = name
	return nil
}

// refresh writes a new lock file now and then (files are never
// overwritten) so that other hosts do not take it for stale. When the
// renewals fail for lockLostAge, the repository refuses to commit more.
func (l *Lock) refresh(ctx context.Context) {
	defer close(l.done)
	lastOK := time.Now()
	wait := lockRefresh
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		l.mu.Lock()
		old := l.info.Name
		err := l.write(ctx)
		if err == nil {
			_ = l.r.be.Remove(ctx, backend.Handle{Kind: backend.Locks, Name: old})
		}
		l.mu.Unlock()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			lastOK, wait = time.Now(), lockRefresh
		case time.Since(lastOK) >= lockLostAge:
			var lost error = &lostLock{since: time.Since(lastOK), last: err}
			l.r.lost.CompareAndSwap(nil, &lost)
			return
		default:
			wait = min(lockRetry, lockRefresh)
		}
	}
}

// Unlock releases the lock. A lock the store refuses to remove
// (append-only credentials, backend.ErrDenied) is left in place, and the
// repository's notes say so: it is harmless to backups, and the next
// `unlock` or prune run with credentials that may delete removes it once
// it is stale.
func (l *Lock) Unlock() {
	if l == nil {
		return
	}
	l.cancel()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.r.be.Remove(context.Background(), backend.Handle{Kind: backend.Locks, Name: l.info.Name})
	if errors.Is(err, backend.ErrDenied) {
		l.r.note(fmt.Sprintf("lock %s is left in place: these credentials may not delete (append-only); "+
			"it does not stop backups, and `stillpoint unlock` or the next prune run with credentials that may delete removes it once it is stale", l.info.Name))
	}
}

// ErrAppendOnly means the credentials may write but not delete, so a
// command that deletes (forget, prune, unlock) cannot run with them.
var ErrAppendOnly = errors.New("append-only credentials cannot delete")

// appendOnly says why a deleting command is refused; it wraps
// ErrAppendOnly and the store's refusal.
type appendOnly struct {
	command string
	err     error
}

func (e *appendOnly) Error() string {
	return fmt.Sprintf("%s refused: %v; run %s elsewhere, with credentials that may delete (s3:DeleteObject); nothing was changed (%v)",
		e.command, ErrAppendOnly, e.command, e.err)
}
func (e *appendOnly) Unwrap() []error { return []error{ErrAppendOnly, e.err} }

// CheckDelete finds out, before a command that deletes changes anything,
// whether the store lets these credentials delete: it removes a lock name
// that was never written (S3 checks the permission before it looks for
// the key). With append-only credentials it returns an error that wraps
// ErrAppendOnly and names command.
func CheckDelete(ctx context.Context, be backend.Backend, command string) error {
	err := be.Remove(ctx, backend.Handle{Kind: backend.Locks, Name: NewRandomID().String()})
	if errors.Is(err, backend.ErrDenied) {
		return &appendOnly{command: command, err: err}
	}
	return err
}

// PrepareDelete is the pre-flight of a command that deletes (forget,
// prune), run before it writes anything: with append-only credentials it
// fails at once (CheckDelete); else it removes the stale locks, such as
// those append-only clients leave because they cannot remove their own,
// and says which. A stale lock counts as gone for prune in any case, so
// removing it changes no decision.
func (r *Repository) PrepareDelete(ctx context.Context, command string) (notes []string, err error) {
	if err := CheckDelete(ctx, r.be, command); err != nil {
		return nil, err
	}
	locks, err := ListLocks(ctx, r.be)
	if err != nil {
		return nil, fmt.Errorf("read locks: %w", err)
	}
	for _, l := range locks {
		if !l.Stale() {
			continue
		}
		if err := r.be.Remove(ctx, backend.Handle{Kind: backend.Locks, Name: l.Name}); err != nil {
			return notes, fmt.Errorf("remove stale lock %s: %w", l.Name, err)
		}
		notes = append(notes, fmt.Sprintf("removed stale lock %s: %s", l.Name, l))
	}
	return notes, nil
}

// noteFns holds each repository's OnNote function (a map, not a field of
// Repository, so that lock.go keeps it to itself).
var noteFns sync.Map // *Repository → func(string)

// OnNote sets where the repository's notes go (what a person should know
// but is no failure, like a lock left in place); nil drops them.
func (r *Repository) OnNote(fn func(string)) {
	if fn == nil {
		noteFns.Delete(r)
		return
	}
	noteFns.Store(r, fn)
}

func (r *Repository) note(msg string) {
	if fn, ok := noteFns.Load(r); ok {
		fn.(func(string))(msg)
	}
}
