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
	"time"
)

// FreezeInfo tells a writer how the run will fix its view of the data.
type FreezeInfo struct {
	RunID string
	// Covered lists the source paths that will be read from a snapshot, with
	// the consistency level of each ("volume" or "file"); a path not listed
	// is read live.
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
}

// Writer makes one application consistent for a moment.
type Writer interface {
	// Name identifies the writer in reports, e.g. "sqlite /srv/app/app.db".
	Name() string
	// Freeze flushes the application and holds it still until Thaw. It must
	// return within ctx's deadline; an error aborts the snapshot (Thaw is
	// still called).
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
