package run

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/quiesce"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// fakeWriter freezes with the given result and counts its thaws.
type fakeWriter struct {
	name   string
	frozen *quiesce.Frozen
	err    error
	thaws  int
}

func (f *fakeWriter) Name() string { return f.name }
func (f *fakeWriter) Freeze(context.Context, quiesce.FreezeInfo) (*quiesce.Frozen, error) {
	return f.frozen, f.err
}
func (f *fakeWriter) Thaw(context.Context) error { f.thaws++; return nil }

// A writer that did not freeze in time (on-timeout: snap) is recorded as
// such, its not-whole files are refused by the substitute view and failed
// by the file reader, and the warnings say why; a failed freeze is one
// error, said once, with every writer thawed.
func TestWritersThatDidNotFreeze(t *testing.T) {
	crash := &quiesce.TimeoutError{Writer: "sqlite /srv/a.db", Err: errors.New("sqlite /srv/a.db: take the write lock: busy"), CrashConsistent: true, Consequence: "crash-consistent"}
	live := &quiesce.TimeoutError{Writer: "sqlite /srv/b.db", Err: errors.New("sqlite /srv/b.db: take a read lock: busy"), NotWhole: []string{"/srv/b.db", "/srv/b.db-wal"}}
	ok := &fakeWriter{name: "command ok", frozen: &quiesce.Frozen{Notes: []string{"paused"}}}
	a := &fakeWriter{name: "sqlite /srv/a.db", err: crash}
	b := &fakeWriter{name: "sqlite /srv/b.db", err: live}
	ws := []quiesce.Writer{ok, quiesce.SnapOnTimeout(a), quiesce.SnapOnTimeout(b)}
	frozen, err := freezeAll(context.Background(), ws, quiesce.FreezeInfo{})
	if err != nil {
		t.Fatal(err)
	}
	reports := thawAll(frozen)
	if ok.thaws != 1 || a.thaws != 1 || b.thaws != 1 {
		t.Errorf("thaws %d %d %d", ok.thaws, a.thaws, b.thaws)
	}
	if r := reports[0]; !r.Frozen || r.Consistency != "application" || r.Reason != "" {
		t.Errorf("frozen writer: %+v", r)
	}
	if r := reports[1]; r.Frozen || r.Consistency != "crash" || !strings.Contains(r.Reason, "take the write lock") || len(r.NotWhole) != 0 {
		t.Errorf("crash-consistent writer: %+v", r)
	}
	if r := reports[2]; r.Frozen || r.Consistency != "none" || len(r.NotWhole) != 2 {
		t.Errorf("live writer: %+v", r)
	}
	warn := thawErrors(reports)
	if warn == nil || strings.Count(warn.Error(), "did not freeze") != 2 || strings.Contains(warn.Error(), "command ok") {
		t.Errorf("warnings: %v", warn)
	}

	subs := map[string]string{}
	for _, fw := range frozen {
		if fw.frozen != nil {
			for k, v := range fw.frozen.Substitutes {
				subs[k] = v
			}
		}
	}
	sv := &substituteView{View: &view.Live{}, subs: subs}
	if b.frozen != nil {
		t.Fatal("the writer's own result was changed")
	}
	for _, p := range live.NotWhole {
		res, refused := notWholeRead(sv, p)
		if !refused || res.Outcome != outcome.Failed || res.Reason != "not-frozen" || res.Stored || !strings.Contains(res.Err.Error(), "did not freeze") {
			t.Errorf("%s: %+v %v", p, res, refused)
		}
		if _, err := sv.Open(p); err == nil {
			t.Errorf("%s: the substitute view served a refused file", p)
		}
	}
	if _, refused := notWholeRead(sv, "/srv/a.db"); refused {
		t.Error("a crash-consistent database refused")
	}
	if _, refused := notWholeRead(&view.Live{}, "/srv/b.db"); refused {
		t.Error("refused outside a substitute view")
	}

	// A writer that fails (on-timeout: fail) fails the freeze, once.
	c := &fakeWriter{name: "sqlite /srv/c.db", err: errors.New("sqlite /srv/c.db: busy")}
	ok.thaws = 0
	_, err = freezeAll(context.Background(), []quiesce.Writer{ok, c}, quiesce.FreezeInfo{})
	if err == nil || strings.Count(err.Error(), "sqlite /srv/c.db: busy") != 1 || ok.thaws != 1 || c.thaws != 1 {
		t.Errorf("failed freeze: %v (thaws %d %d)", err, ok.thaws, c.thaws)
	}
}
