package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

var ctx = context.Background()

func open(t *testing.T, path string) *DB {
	t.Helper()
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

var t0 = time.Date(2026, 5, 6, 2, 0, 0, 123456789, time.UTC)

func sample(job string, start time.Time, status Status) *Run {
	return &Run{
		Job: job, Kind: Full, Trigger: "scheduled", Start: start, End: start.Add(95 * time.Second), Status: status,
		Snapshot: "4f2a9c01", Outcomes: map[string]int{"ok": 1200, "ok-snapshot": 40, "changed": 2, "failed": 1},
		Flagged: []File{{"/srv/app/log/app.log", "changed", "size changed while read"}, {"/srv/app/lock", "failed", "locked by pid 812"}},
		Steps: []Step{{Kind: "hook", Name: "before-backup: app-ctl flush", Status: "ok"},
			{Kind: "writer", Name: "sqlite /srv/app/app.db", Status: "frozen", Freeze: 38 * time.Millisecond, Message: "wal checkpoint"}},
		FreezeWindow: 41 * time.Millisecond, QuietWait: 3500 * time.Millisecond,
		BytesRead: 7 << 30, BytesAdded: 12 << 20, RetriedFiles: 1, Errors: []string{"/srv/app/lock: locked"},
	}
}

func TestRecordGet(t *testing.T) {
	d := open(t, filepath.Join(t.TempDir(), "state", FileName))
	want := sample("app", t0, Partial)
	id, err := d.Record(ctx, want)
	if err != nil || id == 0 || want.ID != id {
		t.Fatalf("Record: %d %v", id, err)
	}
	got, err := d.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Start.Equal(want.Start) || !got.End.Equal(want.End) {
		t.Errorf("times %v–%v, want %v–%v", got.Start, got.End, want.Start, want.End)
	}
	got.Start, got.End = want.Start, want.End
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if got.FlaggedCount() != 3 || got.Duration() != 95*time.Second {
		t.Errorf("flagged %d, duration %v", got.FlaggedCount(), got.Duration())
	}
	if _, err := d.Get(ctx, id+1); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of an unknown id: %v", err)
	}
	if _, err := d.Record(ctx, &Run{Job: "app"}); err == nil {
		t.Error("a run without kind and status is recorded")
	}
	// a run with nothing beyond the required fields reads back empty
	bare := &Run{Job: "bare", Kind: Drill, Status: Failed, Start: t0, End: t0}
	if _, err := d.Record(ctx, bare); err != nil {
		t.Fatal(err)
	}
	b, err := d.Get(ctx, bare.ID)
	if err != nil || len(b.Flagged) != 0 || len(b.Steps) != 0 || b.Errors != nil || len(b.Outcomes) != 0 {
		t.Errorf("bare run: %+v %v", b, err)
	}
}

func TestListAndLast(t *testing.T) {
	d := open(t, filepath.Join(t.TempDir(), FileName))
	statuses := []Status{Success, Partial, Failed, Success, Failed}
	for i, s := range statuses {
		for _, job := range []string{"app", "db"} {
			r := sample(job, t0.Add(time.Duration(i)*time.Hour), s)
			if job == "db" && i == 3 {
				r.Kind = Drill
			}
			if _, err := d.Record(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	all, err := d.List(ctx, "", 0)
	if err != nil || len(all) != 10 {
		t.Fatalf("List all: %d runs, %v", len(all), err)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Start.After(all[i-1].Start) {
			t.Fatalf("not newest first: %v after %v", all[i].Start, all[i-1].Start)
		}
	}
	app, err := d.List(ctx, "app", 3)
	if err != nil || len(app) != 3 {
		t.Fatalf("List app 3: %d %v", len(app), err)
	}
	for i, r := range app {
		if r.Job != "app" || !r.Start.Equal(t0.Add(time.Duration(4-i)*time.Hour)) || len(r.Flagged) != 2 {
			t.Errorf("run %d: %s %v, %d flagged", i, r.Job, r.Start, len(r.Flagged))
		}
	}
	last, err := d.Last(ctx, "app")
	if err != nil || last.Status != Failed || !last.Start.Equal(t0.Add(4*time.Hour)) {
		t.Errorf("Last: %+v %v", last, err)
	}
	ok, err := d.LastSuccess(ctx, "app")
	if err != nil || !ok.Start.Equal(t0.Add(3*time.Hour)) {
		t.Errorf("LastSuccess app: %v %v", ok.Start, err)
	}
	// the newest success of db is a drill, which wrote no snapshot
	ok, err = d.LastSuccess(ctx, "db")
	if err != nil || !ok.Start.Equal(t0.Add(1*time.Hour)) || ok.Status != Partial {
		t.Errorf("LastSuccess db: %v %v", ok.Start, err)
	}
	if r, err := d.Last(ctx, "db", Success); err != nil || r.Kind != Drill {
		t.Errorf("Last db success: %+v %v", r, err)
	}
	if _, err := d.LastSuccess(ctx, "none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("LastSuccess of an unknown job: %v", err)
	}
	if jobs, err := d.Jobs(ctx); err != nil || !reflect.DeepEqual(jobs, []string{"app", "db"}) {
		t.Errorf("Jobs: %v %v", jobs, err)
	}
}

func TestReopenAndSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Record(ctx, sample("app", t0, Success)); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d = open(t, path)
	runs, err := d.List(ctx, "app", 0)
	if err != nil || len(runs) != 1 || runs[0].Snapshot != "4f2a9c01" {
		t.Fatalf("after reopening: %v %v", runs, err)
	}
	var v int
	var mode string
	if err := d.db.QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil || v != SchemaVersion {
		t.Errorf("schema version %d %v, want %d", v, err, SchemaVersion)
	}
	if err := d.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal mode %q %v", mode, err)
	}
	d.Close()

	// a database from a newer stillpoint is refused, not changed
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "newer than this stillpoint's") {
		t.Errorf("Open of a newer schema: %v", err)
	}
}

func TestCorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	junk := []byte(strings.Repeat("this is not a database ", 200))
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), "is not a readable history database") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open of a corrupt file: %v", err)
	}
	if got, _ := os.ReadFile(path); string(got) != string(junk) {
		t.Error("the corrupt file was changed")
	}
}

// Two handles on one file, as the daemon and a CLI: concurrent writes and
// reads all succeed.
func TestConcurrentUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	a, b := open(t, path), open(t, path)
	const each = 40
	var wg sync.WaitGroup
	errs := make(chan error, 4*each)
	for w, d := range []*DB{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := d.Record(ctx, sample(fmt.Sprintf("job%d", w), t0.Add(time.Duration(i)*time.Minute), Success)); err != nil {
					errs <- err
					return
				}
				if _, err := d.List(ctx, "", 5); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	runs, err := b.List(ctx, "", 0)
	if err != nil || len(runs) != 4*each {
		t.Fatalf("%d runs recorded, want %d (%v)", len(runs), 4*each, err)
	}
	for _, r := range runs {
		if len(r.Flagged) != 2 || len(r.Steps) != 2 || r.Outcomes["ok"] != 1200 {
			t.Fatalf("run %d lost rows: %+v", r.ID, r)
		}
	}
}

func TestListManyRuns(t *testing.T) {
	d := open(t, filepath.Join(t.TempDir(), FileName))
	n := idsPerQuery + 20
	for i := range n {
		r := &Run{Job: "app", Kind: Full, Status: Success, Start: t0.Add(time.Duration(i) * time.Second), End: t0,
			Outcomes: map[string]int{"ok": i}}
		if _, err := d.Record(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	runs, err := d.List(ctx, "app", 0)
	if err != nil || len(runs) != n {
		t.Fatalf("%d runs, %v", len(runs), err)
	}
	for i, r := range runs {
		if r.Outcomes["ok"] != n-1-i {
			t.Fatalf("run %d has the outcomes of another", i)
		}
	}
}

// Prune lets old runs go with their details, but keeps each job's newest
// runs and its newest successful backup, however old.
func TestPrune(t *testing.T) {
	d := open(t, filepath.Join(t.TempDir(), FileName))
	// app: a success 30 days ago, then 20 failures a day apart; db: 5 old successes
	if _, err := d.Record(ctx, sample("app", t0.AddDate(0, 0, -30), Success)); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := d.Record(ctx, sample("app", t0.AddDate(0, 0, -20+i), Failed)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		if _, err := d.Record(ctx, sample("db", t0.AddDate(0, 0, -100+i), Success)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := d.Prune(ctx, Retention{Before: t0.AddDate(0, 0, -10), Keep: 3})
	if err != nil {
		t.Fatal(err)
	}
	app, _ := d.List(ctx, "app", 0)
	db, _ := d.List(ctx, "db", 0)
	// app keeps the 10 of the last 10 days and its only success; db its 3 newest
	if n != 10+2 || len(app) != 11 || len(db) != 3 {
		t.Fatalf("pruned %d; app %d runs, db %d runs", n, len(app), len(db))
	}
	if ok, err := d.LastSuccess(ctx, "app"); err != nil || !ok.Start.Equal(t0.AddDate(0, 0, -30)) {
		t.Errorf("app's newest success went: %v %v", ok, err)
	}
	if !db[0].Start.Equal(t0.AddDate(0, 0, -96)) || !db[2].Start.Equal(t0.AddDate(0, 0, -98)) {
		t.Errorf("db kept %v … %v, want its 3 newest", db[0].Start, db[2].Start)
	}
	var orphans int
	if err := d.db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM flagged WHERE run NOT IN (SELECT id FROM runs))
		+ (SELECT count(*) FROM steps WHERE run NOT IN (SELECT id FROM runs))
		+ (SELECT count(*) FROM outcomes WHERE run NOT IN (SELECT id FROM runs))`).Scan(&orphans); err != nil || orphans != 0 {
		t.Errorf("%d details of pruned runs left (%v)", orphans, err)
	}
	if n, err := d.Prune(ctx, Retention{Before: t0.AddDate(0, 0, -10), Keep: 3}); err != nil || n != 0 {
		t.Errorf("a second prune: %d %v", n, err)
	}
}
