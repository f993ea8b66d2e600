// Package quiesce chooses the moment a backup's view of the data is fixed:
// hooks that stop and restart applications, writers that make an
// application flush and pause for the milliseconds a snapshot set takes,
// and a wait for a quiet period with no writes.
//
// The run calls, in order: hooks before-backup, hooks before-snapshot, the
// inactivity wait, Freeze of every writer, the snapshot set's creation,
// Thaw of every writer (always, also when creating the set failed), hooks
// after-snapshot, the backup itself, hooks after-backup (or on-error).
package quiesce

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// FreezeInfo tells a writer how the run will fix its view of the data.
type FreezeInfo struct {
	RunID string
	// Covered lists the source paths that will be read from a snapshot, with
	// the consistency level of each ("volume" or "crash" for a snapshot of a
	// whole filesystem at one instant, "file" for per-file clones); a path
	// not listed is read live.
	Covered map[string]string
	// StagingDir is where a writer may put a consistent copy of its
	// application's files when no snapshot covers them (e.g. SQLite's online
	// backup); the run removes it at the end.
	StagingDir string
}

// Frozen is what a writer reports after Freeze.
type Frozen struct {
	// Substitutes maps an original path to a file holding a consistent copy
	// of it: the backup reads the copy and stores it under the original path.
	Substitutes map[string]string
	// Notes for the report.
	Notes []string
	// Timeout is set when the writer did not hold its application still
	// because its freeze ran out of time and the job said on-timeout: snap
	// (see SnapOnTimeout): the snapshot is taken without the freeze, the
	// report says so, and the files in Timeout.NotWhole must be recorded
	// failed.
	Timeout *TimeoutError
}

// Writer makes one application consistent for a moment.
type Writer interface {
	// Name identifies the writer in reports, e.g. "sqlite /srv/app/app.db".
	Name() string
	// Freeze flushes the application and holds it still until Thaw. It must
	// return within ctx's deadline; an error aborts the snapshot (Thaw is
	// still called). A freeze that runs out of the writer's own time
	// returns a *TimeoutError, which SnapOnTimeout turns into a Frozen.
	Freeze(ctx context.Context, info FreezeInfo) (*Frozen, error)
	// Thaw lets the application go on. It is always called after Freeze,
	// even when Freeze or the snapshot failed, and must be safe to call then.
	Thaw(ctx context.Context) error
}

// WriterReport says how long a writer held its application still.
type WriterReport struct {
	Name   string        `json:"name"`
	Held   time.Duration `json:"held_ns"`
	Error  string        `json:"error,omitempty"`
	Notes  []string      `json:"notes,omitempty"`
	Thawed bool          `json:"thawed"`
}

// TimeoutError is a Freeze that ran out of the writer's own time (its
// timeout, not the run's cancellation). It says what a snapshot taken
// without the freeze holds of the application, so that the run can go on
// (SnapOnTimeout) or fail.
type TimeoutError struct {
	// Writer is the writer's Name.
	Writer string
	// Err says what did not finish in time, and why.
	Err error
	// CrashConsistent: a snapshot of this run holds every file of the
	// application at one instant, so that taken without the freeze it
	// restores as after a power cut (SQLite rolls back its journal or
	// replays its WAL, PostgreSQL and InnoDB replay their logs).
	CrashConsistent bool
	// NotWhole lists the application's files that, without the freeze,
	// would be stored in a state the application never had (read live or
	// cloned file by file while it writes): a run that goes on must record
	// them failed, never store them as whole.
	NotWhole []string
	// Consequence says in words what the backup holds instead, e.g. "the
	// snapshot holds the database crash-consistent".
	Consequence string
}

func (e *TimeoutError) Error() string {
	if e.Consequence == "" {
		return e.Err.Error()
	}
	return e.Err.Error() + "; " + e.Consequence
}

func (e *TimeoutError) Unwrap() error { return e.Err }

// SnapOnTimeout returns w with the job's on-timeout: snap: when w's Freeze
// runs out of its time, Freeze returns a Frozen whose Timeout says so
// instead of the error, and the run takes its snapshot without the freeze
// (a writer that cannot get its lock does not sink a good snapshot). Every
// other error, a cancelled run included, still fails the freeze.
func SnapOnTimeout(w Writer) Writer { return &snapOnTimeout{w} }

type snapOnTimeout struct{ Writer }

func (s *snapOnTimeout) Freeze(ctx context.Context, info FreezeInfo) (*Frozen, error) {
	fr, err := s.Writer.Freeze(ctx, info)
	var te *TimeoutError
	if err == nil || !errors.As(err, &te) {
		return fr, err
	}
	return &Frozen{Timeout: te}, nil
}

// errFreezeTimeout is the cause of a freeze context whose writer timeout
// passed; it tells a writer's own timeout from the run's cancellation.
var errFreezeTimeout = errors.New("the writer's freeze timeout passed")

// freezeContext applies a writer's own timeout on top of the run's deadline.
func freezeContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, d, errFreezeTimeout)
}

// freezeTimedOut tells whether ctx (from freezeContext) ended because the
// writer's own timeout passed.
func freezeTimedOut(ctx context.Context) bool {
	return ctx.Err() != nil && errors.Is(context.Cause(ctx), errFreezeTimeout)
}

// awaitDeadline lets ctx catch up with an error that its own deadline
// caused: a dial or query given ctx's deadline can fail with a timeout a
// moment before ctx's timer fires (on Windows the clock is coarse), and
// the error would then not be known as the freeze timeout's.
func awaitDeadline(ctx context.Context, err error) {
	dl, ok := ctx.Deadline()
	if !ok || ctx.Err() != nil {
		return
	}
	var ne net.Error
	if time.Now().Before(dl) && !errors.Is(err, os.ErrDeadlineExceeded) && !(errors.As(err, &ne) && ne.Timeout()) {
		return
	}
	t := time.NewTimer(time.Until(dl) + 50*time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// ctxNote is " (why ctx ended)" to add to err, or "" when ctx did not end
// or err already says so.
func ctxNote(ctx context.Context, err error) string {
	if ctx.Err() == nil || strings.Contains(err.Error(), ctx.Err().Error()) {
		return ""
	}
	return " (" + ctx.Err().Error() + ")"
}

// timeoutWords is "the freeze timeout (d)", or "the freeze timeout" when
// the writer has none of its own.
func timeoutWords(d time.Duration) string {
	if d <= 0 {
		return "the freeze timeout"
	}
	return fmt.Sprintf("the freeze timeout (%s)", d)
}
