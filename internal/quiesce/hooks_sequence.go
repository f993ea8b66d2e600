package quiesce

import (
	"context"
	"errors"
	"fmt"
)

// Phases are the parts of a run that the hooks surround. Every field may
// be nil.
type Phases struct {
	// Snapshot fixes the run's view of the data (inactivity wait, writers'
	// freeze, snapshot set, thaw) and returns where the snapshots are.
	Snapshot func(ctx context.Context) (snapshotPaths []string, err error)
	// Backup reads and stores the data.
	Backup func(ctx context.Context, snapshotPaths []string) (Outcome, error)
	// Release drops the snapshot set. It is called whenever Snapshot was
	// called, also when Snapshot or Backup failed, with a context that is
	// not cancelled with the run's, so it must cope with a partial set.
	Release func(ctx context.Context) error
}

// SequenceReport is what Sequence did.
type SequenceReport struct {
	Hooks         []HookResult
	SnapshotPaths []string
	Outcome       Outcome
	// FailedAt names the step that failed first: a hook point, "snapshot",
	// "backup" or "release"; "" when the run succeeded.
	FailedAt string
}

// Warnings lists the optional hooks that failed.
func (s *SequenceReport) Warnings() []string {
	var w []string
	for _, r := range s.Hooks {
		if !r.OK() && !r.Essential {
			w = append(w, fmt.Sprintf("optional %s hook %q failed: %s", r.Point, r.Command, r.Error))
		}
	}
	return w
}

// Sequence drives a run through its hook points and phases, so that no
// cleanup hook can be forgotten:
//
//	before-backup → before-snapshot → Snapshot → after-snapshot →
//	Backup → Release → after-backup → on-error (only when something failed)
//
// A failure (an essential hook, Snapshot, Backup, or a panic in them) skips
// the phases and the before-* hooks still ahead, but never the cleanup:
// once before-backup has started, after-snapshot and after-backup always
// run exactly once — after-snapshot also when the snapshot was never
// attempted, because a before-backup hook may have stopped the application
// that an after-snapshot hook restarts — and on-error runs when anything
// failed. Cleanup hooks run even when ctx is cancelled. The error joins
// the first failure with any essential cleanup hook's failure; a panic in
// a phase is re-raised after the cleanup hooks ran.
func (r *HookRunner) Sequence(ctx context.Context, env HookEnv, ph Phases) (*SequenceReport, error) {
	rep := &SequenceReport{}
	var first error
	var later []error
	fail := func(step string, err error) {
		if err == nil {
			return
		}
		if first == nil {
			first, rep.FailedAt = err, step
			return
		}
		later = append(later, err)
	}
	point := func(ctx context.Context, p Point) {
		res, err := r.Run(ctx, p, env)
		rep.Hooks = append(rep.Hooks, res...)
		fail(string(p), err)
	}
	var panicked any
	// call runs a phase; a panic becomes its failure until the cleanup
	// hooks have run.
	call := func(step string, f func() error) {
		defer func() {
			if p := recover(); p != nil {
				if panicked == nil {
					panicked = p
				}
				fail(step, fmt.Errorf("%s: panic: %v", step, p))
			}
		}()
		if err := f(); err != nil {
			fail(step, fmt.Errorf("%s: %w", step, err))
		}
	}

	// ahead tells whether the run may go on to its next step: nothing
	// failed and the run was not cancelled.
	ahead := func(step string) bool {
		if first == nil && ctx.Err() != nil {
			fail(step, fmt.Errorf("%s: %w", step, context.Cause(ctx)))
		}
		return first == nil
	}
	if ahead(string(BeforeBackup)) {
		point(ctx, BeforeBackup)
	}
	if ahead(string(BeforeSnapshot)) {
		point(ctx, BeforeSnapshot)
	}
	snapped := false
	if ph.Snapshot != nil && ahead("snapshot") {
		snapped = true
		call("snapshot", func() error {
			paths, err := ph.Snapshot(ctx)
			rep.SnapshotPaths, env.SnapshotPaths = paths, paths
			return err
		})
	}
	env.Err = first
	point(context.WithoutCancel(ctx), AfterSnapshot)
	if ph.Backup != nil && ahead("backup") {
		call("backup", func() error {
			out, err := ph.Backup(ctx, rep.SnapshotPaths)
			rep.Outcome = out
			return err
		})
	}
	if snapped && ph.Release != nil {
		call("release", func() error { return ph.Release(context.WithoutCancel(ctx)) })
	}
	if first != nil && rep.Outcome.ExitCode == 0 {
		rep.Outcome.ExitCode = 1
	}
	out := rep.Outcome
	env.Outcome, env.Err = &out, first
	point(ctx, AfterBackup)
	if first != nil {
		env.Err = first
		point(ctx, OnError)
	}
	if panicked != nil {
		panic(panicked)
	}
	if first == nil {
		return rep, nil
	}
	if rep.Outcome.ExitCode == 0 {
		rep.Outcome.ExitCode = 1 // an essential after-backup hook failed
	}
	return rep, errors.Join(append([]error{first}, later...)...)
}
