package run_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/hold"
	"github.com/stillpoint-backup/stillpoint/internal/job"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/restore"
	"github.com/stillpoint-backup/stillpoint/internal/run"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/loopfs"
)

// These tests take a SQLite database whose write lock another connection
// keeps, half-way through a transaction, for longer than the writer's
// timeout (the busy machine of issue 11), and back it up through a job
// file, as stillpoint backup --job does.

// bankDB makes a rollback-journal database of 40 accounts holding 1000
// each, with enough filler to span many pages.
func bankDB(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		"PRAGMA journal_mode = delete",
		"CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)",
		"INSERT INTO accounts (balance) SELECT 1000 FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 40) SELECT x FROM c)",
		"CREATE TABLE filler (id INTEGER PRIMARY KEY, v TEXT)",
		"CREATE INDEX filler_v ON filler (v)",
		"INSERT INTO filler (v) SELECT hex(randomblob(200)) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 2000) SELECT x FROM c)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// holdDBLock takes the database's write lock (BEGIN how) on another
// connection and rewrites the filler without committing; a tiny page cache
// spills the change into the database file, so only its journal makes it
// whole. release rolls back; the test's end does too.
func holdDBLock(t *testing.T, path, how string) (release func()) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"PRAGMA cache_size = 2", "BEGIN " + how,
		"UPDATE filler SET v = hex(randomblob(200))", "UPDATE accounts SET balance = 0"} {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	done := false
	release = func() {
		if !done {
			done = true
			conn.ExecContext(context.Background(), "ROLLBACK")
			conn.Close()
			db.Close()
		}
	}
	t.Cleanup(release)
	return release
}

func checkBankDB(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ok string
	var n, sum int
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("%s: integrity_check = %q, %v", path, ok, err)
	}
	if err := db.QueryRow("SELECT count(*), sum(balance) FROM accounts").Scan(&n, &sum); err != nil || n != 40 || sum != 40000 {
		t.Fatalf("%s: %d accounts holding %d (%v), want 40 holding 40000", path, n, sum, err)
	}
}

// backupJob parses a job file's text, maps it as the CLI does and runs it.
func backupJob(t *testing.T, r *repo.Repository, yaml string) (*run.BackupResult, error) {
	t.Helper()
	j, warns, err := job.Parse("job.yaml", []byte(yaml))
	if err != nil || len(warns) != 0 {
		t.Fatalf("job: %v %v", err, warns)
	}
	o, err := run.FromJob(j, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if o.Plan, err = run.PlanSnapshots(o.Sources, "writertest", nil); err != nil {
		t.Fatal(err)
	}
	return run.Backup(context.Background(), r, o)
}

func writerJob(src, db, snapshot, extra string) string {
	return fmt.Sprintf("sources:\n  - {path: %s, snapshot: %s}\nwriters:\n  - sqlite: %s\n    timeout: 300ms\n%s", src, snapshot, db, extra)
}

func warned(res *run.BackupResult, s string) bool {
	return slices.ContainsFunc(res.Warnings, func(w string) bool { return strings.Contains(w, s) })
}

// Under a btrfs snapshot the run takes the snapshot without the freeze
// (on-timeout: snap, the default), says so in the manifest and the
// warnings, and the restored database, with its hot journal, opens as the
// last committed state. With on-timeout: fail the run fails and writes
// nothing.
func TestWriterTimeoutUnderSnapshotSnaps(t *testing.T) {
	mnt := loopfs.Btrfs(t, 256)
	src := filepath.Join(mnt, "srv", "app")
	os.MkdirAll(src, 0o755)
	db := filepath.Join(src, "bank.db")
	bankDB(t, db)
	holdDBLock(t, db, "IMMEDIATE")
	r := newRepo(t)

	res, err := backupJob(t, r, writerJob(src, db, "required", ""))
	if err != nil {
		t.Fatal(err)
	}
	s := res.Snapshot
	if s.Quiesce == nil || len(s.Quiesce.Writers) != 1 {
		t.Fatalf("quiesce record %+v", s.Quiesce)
	}
	w := s.Quiesce.Writers[0]
	t.Logf("writer %+v; warnings %q", w, res.Warnings)
	if w.Frozen || w.Consistency != "crash" || len(w.NotWhole) != 0 || !strings.Contains(w.Reason, "freeze timeout") || !strings.Contains(w.Reason, "crash-consistent") {
		t.Fatalf("writer record %+v: want not frozen, crash-consistent, with the reason", w)
	}
	if !warned(res, "did not freeze") || res.ExitCode() != 0 {
		t.Errorf("exit code %d, warnings %q", res.ExitCode(), res.Warnings)
	}
	// the record survives the manifest's round trip
	snaps, _, err := r.Snapshots(context.Background())
	if err != nil || len(snaps) != 1 || len(snaps[0].Quiesce.Writers) != 1 || snaps[0].Quiesce.Writers[0].Frozen || snaps[0].Quiesce.Writers[0].Reason == "" {
		t.Fatalf("stored manifest: %v %+v", err, snaps)
	}
	dst := t.TempDir()
	if rr, err := restore.Run(context.Background(), r, s.Tree, restore.Options{Target: dst}); err != nil || rr.Errors > 0 {
		t.Fatalf("restore: %v %+v", err, rr)
	}
	restored := filepath.Join(dst, db)
	if fi, err := os.Stat(restored + "-journal"); err != nil || fi.Size() == 0 {
		t.Fatalf("no hot journal restored next to the database (%v): the test caught no transaction half-way", err)
	}
	checkBankDB(t, restored)

	_, err = backupJob(t, r, writerJob(src, db, "required", "    on-timeout: fail\n"))
	if err == nil || !strings.Contains(err.Error(), "freeze timeout") {
		t.Fatalf("on-timeout: fail: %v", err)
	}
	if snaps, _, _ := r.Snapshots(context.Background()); len(snaps) != 1 {
		t.Errorf("on-timeout: fail wrote a snapshot: %d in the repository", len(snaps))
	}
}

// Read live there is no consistent copy: the database's files are
// recorded failed (not-frozen), the other files are stored, the run exits
// 3, and a later backup that times out keeps the last good version, stale.
func TestWriterTimeoutLiveFailsItsFiles(t *testing.T) {
	src := t.TempDir()
	db := filepath.Join(src, "bank.db")
	bankDB(t, db)
	os.WriteFile(filepath.Join(src, "other"), []byte("fine"), 0o644)
	r := newRepo(t)
	yaml := writerJob(src, db, "off", "")

	release := holdDBLock(t, db, "EXCLUSIVE")
	res, err := backupJob(t, r, yaml)
	if err != nil {
		t.Fatal(err)
	}
	s := res.Snapshot
	w := s.Quiesce.Writers[0]
	t.Logf("writer %+v; warnings %q", w, res.Warnings)
	if w.Frozen || w.Consistency != "none" || !slices.Contains(w.NotWhole, db) || !strings.Contains(w.Reason, "not stored as whole") {
		t.Fatalf("writer record %+v", w)
	}
	if !s.Partial || res.ExitCode() != 3 || !warned(res, "did not freeze") {
		t.Errorf("partial %v, exit code %d, warnings %q", s.Partial, res.ExitCode(), res.Warnings)
	}
	tree := treeAt(t, r, s.Tree, src)
	for _, name := range []string{"bank.db", "bank.db-journal"} {
		n := tree.Find(name)
		if n == nil || n.Outcome != outcome.Failed || n.Reason != "not-frozen" || len(n.Content) != 0 {
			t.Fatalf("%s: %+v, want failed (not-frozen) without content", name, n)
		}
	}
	if n := tree.Find("other"); n == nil || n.Outcome != outcome.OK {
		t.Errorf("other: %+v", n)
	}
	if !slices.ContainsFunc(res.Problems, func(p archiver.Problem) bool {
		return p.Path == db && p.Reason == "not-frozen" && strings.Contains(p.Error, "did not freeze")
	}) {
		t.Errorf("problems %+v", res.Problems)
	}

	release()
	res, err = backupJob(t, r, yaml)
	if err != nil || res.ExitCode() != 0 || !res.Snapshot.Quiesce.Writers[0].Frozen || res.Snapshot.Quiesce.Writers[0].Consistency != "application" {
		t.Fatalf("backup after the lock went: %v %+v", err, res)
	}
	good := treeAt(t, r, res.Snapshot.Tree, src).Find("bank.db")

	holdDBLock(t, db, "EXCLUSIVE")
	res, err = backupJob(t, r, yaml)
	if err != nil {
		t.Fatal(err)
	}
	n := treeAt(t, r, res.Snapshot.Tree, src).Find("bank.db")
	if n == nil || n.Outcome != outcome.Stale || !slices.Equal(n.Content, good.Content) {
		t.Fatalf("bank.db after another timeout: %+v, want the last good version, stale", n)
	}
}

// FromJob maps the hold keys: an unset hold holds (with the default
// timeout), hold: off does not, and the rest is passed on.
func TestFromJobHold(t *testing.T) {
	for _, c := range []struct {
		quiesce string
		want    hold.Options
	}{
		{"", hold.Options{Enabled: true, Timeout: hold.DefaultTimeout}},
		{"quiesce: {hold: writers, hold-timeout: 5s, hold-exclude: [auditd, /usr/bin/app]}\n",
			hold.Options{Enabled: true, Timeout: 5 * time.Second, Exclude: []string{"auditd", "/usr/bin/app"}}},
		{"quiesce: {hold: off}\n", hold.Options{Timeout: hold.DefaultTimeout}},
	} {
		j, _, err := job.Parse("job.yaml", []byte("sources: [/srv/app]\n"+c.quiesce))
		if err != nil {
			t.Fatal(err)
		}
		o, err := run.FromJob(j, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if o.Hold.Enabled != c.want.Enabled || o.Hold.Timeout != c.want.Timeout || !slices.Equal(o.Hold.Exclude, c.want.Exclude) {
			t.Errorf("%q: hold %+v, want %+v", c.quiesce, o.Hold, c.want)
		}
	}
}
