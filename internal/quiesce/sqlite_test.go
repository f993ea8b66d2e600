package quiesce

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// A missing database fails Freeze with its path, is not created (an empty
// database would be backed up as if it were the data), and Thaw after the
// failed Freeze is harmless.
func TestSQLiteMissingDatabase(t *testing.T) {
	p := filepath.Join(t.TempDir(), "app.db")
	w := NewSQLite(p, time.Second)
	_, err := w.Freeze(context.Background(), FreezeInfo{StagingDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("freeze: %v, want an error naming %s", err, p)
	}
	if err := w.Thaw(context.Background()); err != nil {
		t.Fatalf("thaw after failed freeze: %v", err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("freeze created %s", p)
	}
}

// Which source covers a path, and how, including through symlinks.
func TestDBCoverage(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "srv", "pg", "data")
	os.MkdirAll(data, 0o755)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(filepath.Join(dir, "srv"), link); err != nil {
		t.Fatal(err)
	}
	cov := map[string]string{filepath.Join(dir, "srv"): "file", filepath.Join(dir, "srv", "pg"): "volume"}
	if src, lvl := dbCoverageOf(cov, data); lvl != "volume" || src != filepath.Join(dir, "srv", "pg") {
		t.Errorf("deepest source: %s %s", src, lvl)
	}
	if _, lvl := dbCoverageOf(map[string]string{link: "volume"}, data); lvl != "volume" {
		t.Errorf("source named through a symlink: %q", lvl)
	}
	if _, lvl := dbCoverageOf(map[string]string{filepath.Join(dir, "sr"): "volume"}, data); lvl != "" {
		t.Errorf("prefix of a name counted as a parent: %q", lvl)
	}
}

// sqliteHoldLock opens another connection to the database at path and
// takes its write lock with BEGIN how ("IMMEDIATE" or "EXCLUSIVE"),
// rewriting the filler table without committing. The page cache is kept
// tiny, so the change spills into the database file before any commit:
// the database alone is then torn, and only its journal makes it whole.
// The lock is held until the test ends.
func sqliteHoldLock(t *testing.T, path, how string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	for _, q := range []string{"PRAGMA cache_size = 2", "BEGIN " + how,
		"UPDATE filler SET v = hex(randomblob(200))", "UPDATE accounts SET balance = 0"} {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() { conn.ExecContext(context.Background(), "ROLLBACK") })
}

// Read live, a database whose lock another connection keeps for the whole
// timeout gets no consistent copy: Freeze says it timed out and names the
// database's files as not whole; SnapOnTimeout turns that into a Frozen
// that says so, and a cancelled run is still an error.
func TestSQLiteTimeoutWithoutSnapshot(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "bank.db")
	sqliteCreateBankPortable(t, db)
	sqliteHoldLock(t, db, "EXCLUSIVE")
	notWhole := []string{db, db + "-wal", db + "-shm", db + "-journal"}

	w := NewSQLite(db, 300*time.Millisecond)
	start := time.Now()
	_, err := w.Freeze(context.Background(), FreezeInfo{StagingDir: t.TempDir()})
	var te *TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("freeze: %v (%T), want a *TimeoutError", err, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("freeze took %s with a 300ms timeout", took)
	}
	if te.CrashConsistent || !slices.Equal(te.NotWhole, notWhole) || te.Writer != w.Name() ||
		!strings.Contains(err.Error(), "freeze timeout") || !strings.Contains(err.Error(), "not stored as whole") {
		t.Fatalf("timeout: crash-consistent %v, not whole %q, %q", te.CrashConsistent, te.NotWhole, err)
	}
	if err := w.Thaw(context.Background()); err != nil {
		t.Fatalf("thaw after the timeout: %v", err)
	}

	sw := SnapOnTimeout(NewSQLite(db, 300*time.Millisecond))
	if sw.Name() != w.Name() {
		t.Errorf("wrapped name %q", sw.Name())
	}
	fr, err := sw.Freeze(context.Background(), FreezeInfo{StagingDir: t.TempDir()})
	if err != nil || fr.Timeout == nil || !slices.Equal(fr.Timeout.NotWhole, notWhole) || len(fr.Substitutes) != 0 {
		t.Fatalf("on-timeout snap: %+v, %v", fr, err)
	}
	if err := sw.Thaw(context.Background()); err != nil {
		t.Fatal(err)
	}

	// The run's cancellation is not the writer's timeout.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	sw = SnapOnTimeout(NewSQLite(db, time.Minute))
	fr, err = sw.Freeze(ctx, FreezeInfo{StagingDir: t.TempDir()})
	if err == nil || errors.As(err, &te) || fr != nil {
		t.Fatalf("cancelled freeze: %+v, %v; want a plain error", fr, err)
	}
	sw.Thaw(context.Background())
}

// sqliteCreateBankPortable makes a rollback-journal bank like
// sqliteCreateBank (which the Linux tests share with a writer process).
func sqliteCreateBankPortable(t *testing.T, path string) {
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
