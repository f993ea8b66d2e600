package run

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"strings"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/quiesce"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// frozenWriter is a writer between Freeze and Thaw.
type frozenWriter struct {
	w      quiesce.Writer
	since  time.Time
	frozen *quiesce.Frozen
	err    error
}

// freezeAll freezes the writers in order. On a failure it thaws those
// already frozen (and the failed one) and returns the error. A writer that
// did not freeze in time (on-timeout: snap) is no failure; the files it
// names as not whole are substituted by a refusal (see notWholeMark), so
// they are recorded failed.
func freezeAll(ctx context.Context, writers []quiesce.Writer, info quiesce.FreezeInfo) ([]*frozenWriter, error) {
	var out []*frozenWriter
	for _, w := range writers {
		fw := &frozenWriter{w: w, since: time.Now()}
		fw.frozen, fw.err = w.Freeze(ctx, info)
		if fw.err == nil {
			fw.frozen = refuseNotWhole(w.Name(), fw.frozen)
		}
		out = append(out, fw)
		if fw.err != nil {
			reports := thawAll(out)
			// the failed writer's own report repeats its freeze error
			last := &reports[len(reports)-1]
			last.Error = strings.TrimPrefix(strings.TrimPrefix(last.Error, "freeze: "+fw.err.Error()), "; ")
			return nil, errors.Join(fmt.Errorf("writer %s: freeze: %w", w.Name(), fw.err), thawErrors(reports))
		}
	}
	return out, nil
}

// thawAll thaws every writer, last frozen first, and says how long each
// held its application still. It runs with its own context: a thaw must
// happen even when the run was cancelled.
func thawAll(frozen []*frozenWriter) []repo.WriterInfo {
	reports := make([]repo.WriterInfo, len(frozen))
	for i := len(frozen) - 1; i >= 0; i-- {
		fw := frozen[i]
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		err := fw.w.Thaw(ctx)
		cancel()
		r := repo.WriterInfo{Name: fw.w.Name(), HeldMs: float64(time.Since(fw.since).Microseconds()) / 1000}
		if fw.err != nil {
			r.Error = "freeze: " + fw.err.Error()
		}
		if err != nil {
			r.Error = joinMsg(r.Error, "thaw: "+err.Error())
		}
		if fw.frozen != nil {
			r.Notes = fw.frozen.Notes
		}
		switch te := timeoutOf(fw.frozen); {
		case fw.err != nil:
		case te == nil:
			r.Frozen, r.Consistency = true, "application"
		default:
			// on-timeout: snap: the claim for the application's data falls
			// to what the snapshot holds without the freeze
			r.Reason = te.Error()
			r.NotWhole = te.NotWhole
			switch {
			case len(te.NotWhole) > 0:
				r.Consistency = "none"
			case te.CrashConsistent:
				r.Consistency = "crash"
			}
		}
		reports[i] = r
	}
	return reports
}

func timeoutOf(fr *quiesce.Frozen) *quiesce.TimeoutError {
	if fr == nil {
		return nil
	}
	return fr.Timeout
}

// thawErrors words what went wrong with the writers that does not undo the
// snapshot, for the run's warnings: a thaw that failed (the application may
// still be paused), and a writer that did not freeze in time, so that the
// snapshot was taken without it (on-timeout: snap).
func thawErrors(reports []repo.WriterInfo) error {
	var errs []error
	for _, r := range reports {
		if r.Error != "" {
			errs = append(errs, fmt.Errorf("writer %s: %s", r.Name, r.Error))
		}
		if !r.Frozen && r.Reason != "" {
			errs = append(errs, fmt.Errorf("writer %s did not freeze, and the backup went on without it (on-timeout: snap): %s", r.Name, strings.TrimPrefix(r.Reason, r.Name+": ")))
		}
	}
	return errors.Join(errs...)
}

// reasonNotFrozen is the outcome reason of a file recorded failed because
// its writer did not freeze its application and no snapshot holds it whole.
const reasonNotFrozen = outcome.ReasonNotFrozen

// notWholeMark, in the substitutes, stands for the copy of a file that a
// writer could not make consistent and no snapshot holds whole: the
// substitute view refuses to serve it, and the file reader records it
// failed (reasonNotFrozen) with the text after the mark as its error. It
// cannot be a path (no path holds a NUL byte).
const notWholeMark = "\x00not-whole\x00"

// refuseNotWhole adds a refusal to the substitutes of fr for each file its
// writer names as not whole.
func refuseNotWhole(name string, fr *quiesce.Frozen) *quiesce.Frozen {
	te := timeoutOf(fr)
	if te == nil || len(te.NotWhole) == 0 {
		return fr
	}
	out := *fr
	out.Substitutes = maps.Clone(fr.Substitutes)
	if out.Substitutes == nil {
		out.Substitutes = map[string]string{}
	}
	why := fmt.Sprintf("writer %s did not freeze in time, and no snapshot holds the file at one instant (%s)", name, strings.TrimPrefix(te.Err.Error(), name+": "))
	for _, p := range te.NotWhole {
		out.Substitutes[p] = notWholeMark + why
	}
	return &out
}

func joinMsg(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// coverage tells writers which sources a snapshot will cover, and how.
func coverage(plan *snapshot.Plan) map[string]string {
	out := map[string]string{}
	if plan == nil {
		return out
	}
	for _, sp := range plan.Sources {
		if sp.Provider != "none" {
			out[sp.Path] = string(sp.Consistency)
		}
	}
	return out
}

// substituteView serves a writer's consistent copy in place of a live
// file, under the original path, with the original's owner, mode and
// times (so a restore puts the database back as it was).
type substituteView struct {
	view.View
	subs map[string]string // original path -> copy
}

// Lstat answers for a substituted path even when the live file is gone: a
// SQLite rollback journal comes and goes, and its substitute is what is stored.
func (s *substituteView) Lstat(p string) (*view.Stat, error) {
	st, err := s.View.Lstat(p)
	if _, refused := s.refused(p); refused {
		return st, err
	}
	if _, ok := s.subs[p]; !ok || err == nil {
		return st, err
	}
	return (&view.Live{}).Lstat(s.subs[p])
}

func (s *substituteView) Open(p string) (view.File, error) {
	if why, refused := s.refused(p); refused {
		return nil, fmt.Errorf("%s: %s", p, why)
	}
	cp, ok := s.subs[p]
	if !ok {
		return s.View.Open(p)
	}
	orig, err := s.Lstat(p)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(cp)
	if err != nil {
		return nil, fmt.Errorf("writer's copy of %s: %w", p, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	st := *orig
	st.Size = fi.Size()
	return &substituteFile{File: f, st: &st}, nil
}

func (s *substituteView) substituted(p string) bool {
	_, ok := s.subs[p]
	return ok
}

// refused tells whether p is a file no writer made consistent and no
// snapshot holds whole, and why.
func (s *substituteView) refused(p string) (string, bool) {
	return strings.CutPrefix(s.subs[p], notWholeMark)
}

// notWholeRead is the file reader's verdict on a file the substitute view
// refuses: failed, not stored (the previous backup's version is kept,
// marked stale).
func notWholeRead(v view.View, p string) (archiver.ReadResult, bool) {
	sv, ok := v.(*substituteView)
	if !ok {
		return archiver.ReadResult{}, false
	}
	why, refused := sv.refused(p)
	if !refused {
		return archiver.ReadResult{}, false
	}
	return archiver.ReadResult{Outcome: outcome.Failed, Reason: reasonNotFrozen, Err: errors.New(why)}, true
}

type substituteFile struct {
	*os.File
	st *view.Stat
}

func (f *substituteFile) Stat() (*view.Stat, error) {
	c := *f.st
	return &c, nil
}
