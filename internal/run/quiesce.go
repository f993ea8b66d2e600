package run

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

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
// already frozen (and the failed one) and returns the error.
func freezeAll(ctx context.Context, writers []quiesce.Writer, info quiesce.FreezeInfo) ([]*frozenWriter, error) {
	var out []*frozenWriter
	for _, w := range writers {
		fw := &frozenWriter{w: w, since: time.Now()}
		fw.frozen, fw.err = w.Freeze(ctx, info)
		out = append(out, fw)
		if fw.err != nil {
			reports := thawAll(out)
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
		reports[i] = r
	}
	return reports
}

func thawErrors(reports []repo.WriterInfo) error {
	var errs []error
	for _, r := range reports {
		if r.Error != "" {
			errs = append(errs, fmt.Errorf("writer %s: %s", r.Name, r.Error))
		}
	}
	return errors.Join(errs...)
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
	if _, ok := s.subs[p]; !ok || err == nil {
		return st, err
	}
	return (&view.Live{}).Lstat(s.subs[p])
}

func (s *substituteView) Open(p string) (view.File, error) {
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

type substituteFile struct {
	*os.File
	st *view.Stat
}

func (f *substituteFile) Stat() (*view.Stat, error) {
	c := *f.st
	return &c, nil
}
