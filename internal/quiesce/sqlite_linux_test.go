package quiesce

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/loopfs"
)

const (
	sqliteBankEnv      = "STILLPOINT_SQLITE_BANK" // database path for the helper process
	sqliteAccounts     = 40
	sqliteStartBalance = 1000
	sqliteBackups      = 20
	// sqliteLoadTimeout bounds each freeze under load. On a busy machine
	// the bank writer may keep the lock from us for longer (issue 11):
	// then the backup is taken without the freeze, and the test checks
	// that it says so and what it holds instead.
	sqliteLoadTimeout = 3 * time.Second
)

// TestSQLiteBankHelper is not a test: run with sqliteBankEnv set (by
// sqliteStartBank), the test binary becomes the application writing the
// database, a separate process as in real life. Each transaction moves money
// between two accounts and counts itself; the total never changes. It
// prints "ready" after its first commit and stops when stdin closes.
func TestSQLiteBankHelper(t *testing.T) {
	path := os.Getenv(sqliteBankEnv)
	if path == "" {
		t.Skip("helper process only")
	}
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(20000)")
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	db.SetMaxOpenConns(1)
	stop := make(chan struct{})
	go func() {
		io := bufio.NewReader(os.Stdin)
		for {
			if _, err := io.ReadByte(); err != nil {
				close(stop)
				return
			}
		}
	}()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	transfer := func(from, to, amount int) error {
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			return err
		}
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{"UPDATE accounts SET balance = balance - ? WHERE id = ?", []any{amount, from}},
			{"UPDATE accounts SET balance = balance + ? WHERE id = ?", []any{amount, to}},
			{"UPDATE meta SET transfers = transfers + 1", nil},
		} {
			if _, err := conn.ExecContext(ctx, q.sql, q.args...); err != nil {
				conn.ExecContext(ctx, "ROLLBACK")
				return err
			}
		}
		if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
			conn.ExecContext(ctx, "ROLLBACK")
			return err
		}
		return nil
	}
	for n := 0; ; n++ {
		select {
		case <-stop:
			os.Exit(0)
		default:
		}
		from, to := rand.IntN(sqliteAccounts), rand.IntN(sqliteAccounts)
		if err := transfer(from, to, 1+rand.IntN(100)); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		if n == 0 {
			fmt.Println("ready")
		}
	}
}

// sqliteCreateBank makes the bank database in the given journal mode.
func sqliteCreateBank(t *testing.T, path, mode string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stmts := []string{
		"PRAGMA journal_mode = " + mode,
		"CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)",
		"CREATE TABLE meta (transfers INTEGER NOT NULL)",
		"INSERT INTO meta VALUES (0)",
		// A second, indexed table with bulk makes the file span many pages,
		// so a torn copy would show in integrity_check.
		"CREATE TABLE filler (id INTEGER PRIMARY KEY, v TEXT)",
		"CREATE INDEX filler_v ON filler (v)",
		"INSERT INTO filler (v) SELECT hex(randomblob(200)) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 2000) SELECT x FROM c)",
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	for i := 0; i < sqliteAccounts; i++ {
		if _, err := db.Exec("INSERT INTO accounts VALUES (?, ?)", i, sqliteStartBalance); err != nil {
			t.Fatal(err)
		}
	}
	var got string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&got); err != nil || got != mode {
		t.Fatalf("journal mode %q (%v), want %s", got, err, mode)
	}
}

// sqliteStartBank starts the writer process and waits for its first commit.
func sqliteStartBank(t *testing.T, path string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSQLiteBankHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), sqliteBankEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	done := make(chan error, 1)
	go func() {
		// Drain the rest so the helper never blocks on a full pipe.
		done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		stdin.Close() // asks the helper to stop
		select {
		case err := <-done:
			if err != nil && !t.Failed() {
				t.Errorf("bank writer: %v", err)
			}
		case <-time.After(20 * time.Second):
			cmd.Process.Kill() // our own child, by its pid
			<-done
			t.Errorf("bank writer did not stop")
		}
	})
	select {
	case l, ok := <-lines:
		if !ok || l != "ready" {
			t.Fatalf("bank writer did not start: %q", l)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("bank writer not ready after 30s")
	}
	go func() {
		for l := range lines {
			if strings.HasPrefix(l, "error:") {
				t.Errorf("bank writer: %s", l)
			}
		}
	}()
}

// sqliteVerify opens the copy and checks integrity and the invariant; it
// returns the number of transfers the copy holds.
func sqliteVerify(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ok string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("%s: integrity_check = %q, %v", path, ok, err)
	}
	var n, sum, transfers int
	if err := db.QueryRow("SELECT count(*), sum(balance) FROM accounts").Scan(&n, &sum); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if n != sqliteAccounts || sum != sqliteAccounts*sqliteStartBalance {
		t.Fatalf("%s: %d accounts holding %d, want %d holding %d", path, n, sum, sqliteAccounts, sqliteAccounts*sqliteStartBalance)
	}
	if err := db.QueryRow("SELECT transfers FROM meta").Scan(&transfers); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return transfers
}

// sqliteCopyMainOnly copies only the main database file: after the writer
// froze it, it must be the whole database on its own.
func sqliteCopyMainOnly(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A concurrent writer process does bank transfers while 20 backups per
// journal mode are taken exactly as a run does (Freeze, btrfs snapshot set,
// Thaw, read through the view); every copy, and its main file alone, passes
// integrity_check and holds the original total. The same for the path
// without a snapshot, where the writer substitutes an online-backup copy.
//
// A freeze may run out of time on a busy machine (on-timeout: snap, the
// job's default). Then, under the snapshot, the copy with its journal or
// WAL must still pass (SQLite recovers it on open, as after a power cut);
// without a snapshot the database's files must be named not whole, and no
// copy is made. Each backup asserts which of the two happened.
func TestSQLiteWriterUnderLoad(t *testing.T) {
	mnt := loopfs.Btrfs(t, 1024) // sparse; small btrfs runs out of metadata space under fsync-heavy writers
	for _, mode := range []string{"delete", "wal"} {
		t.Run(mode, func(t *testing.T) {
			src := filepath.Join(mnt, mode, "srv", "app")
			dbPath := filepath.Join(src, "bank.db")
			sqliteCreateBank(t, dbPath, mode)
			sqliteStartBank(t, dbPath)

			t.Run("snapshot", func(t *testing.T) {
				plan, err := snapshot.NewPlan([]snapshot.Source{{Path: src, Policy: snapshot.Required}}, snapshot.Options{RunID: "sqlitetest"})
				if err != nil {
					t.Fatal(err)
				}
				if c := dbCoveredOf(plan)[src]; !dbOneInstant(c) {
					t.Fatalf("plan covers %s with %q, want a snapshot of the filesystem at one instant", src, c)
				}
				sqliteRunBackups(t, plan, mnt, dbPath, true)
			})
			t.Run("no-snapshot", func(t *testing.T) {
				plan, err := snapshot.NewPlan([]snapshot.Source{{Path: src, Policy: snapshot.Off}}, snapshot.Options{RunID: "sqlitetest"})
				if err != nil {
					t.Fatal(err)
				}
				sqliteRunBackups(t, plan, mnt, dbPath, false)
			})
		})
	}
}

func sqliteRunBackups(t *testing.T, plan *snapshot.Plan, mnt, dbPath string, snapped bool) {
	rel, _ := filepath.Rel(mnt, dbPath)
	seen := map[int]bool{}
	var held, freeze, create []time.Duration
	var frozen, verified int
	for i := 0; i < sqliteBackups; i++ {
		out := t.TempDir()
		staging := t.TempDir()
		w := NewSQLite(dbPath, sqliteLoadTimeout)
		if w.Name() != "sqlite "+dbPath {
			t.Fatalf("name %q", w.Name())
		}
		res := dbBackupOnce(t, SnapOnTimeout(w), plan, staging, mnt, out)
		held = append(held, res.Held)
		freeze, create = append(freeze, res.Freeze), append(create, res.Create)
		subs := res.Frozen.Substitutes
		copyPath := filepath.Join(out, rel)
		if te := res.Frozen.Timeout; te != nil {
			// Not frozen: it must say so and why, and what the backup
			// holds instead.
			if len(subs) != 0 || !strings.Contains(te.Error(), "freeze timeout") || te.Writer != w.Name() {
				t.Fatalf("backup %d: timed out with substitutes %v, error %q", i, subs, te)
			}
			if !snapped {
				if te.CrashConsistent || !slices.Equal(te.NotWhole, []string{dbPath, dbPath + "-wal", dbPath + "-shm", dbPath + "-journal"}) {
					t.Fatalf("backup %d: read live without a copy, the timeout says crash-consistent %v, not whole %q", i, te.CrashConsistent, te.NotWhole)
				}
				if _, err := os.Stat(copyPath); !os.IsNotExist(err) {
					t.Fatalf("backup %d: a database named not whole was copied (%v)", i, err)
				}
				continue
			}
			if !te.CrashConsistent || len(te.NotWhole) != 0 {
				t.Fatalf("backup %d: under a snapshot, the timeout says crash-consistent %v, not whole %q", i, te.CrashConsistent, te.NotWhole)
			}
			// The snapshot holds the database with its journal or WAL at
			// one instant: opened, SQLite recovers a committed state.
			n := sqliteVerify(t, copyPath)
			seen[n] = true
			verified++
			t.Logf("backup %d: not frozen (%v); the crash-consistent copy holds %d transfers", i, te.Err, n)
			continue
		}
		frozen++
		if snapped && len(subs) != 0 {
			t.Fatalf("backup %d: substitutes %v under a volume snapshot", i, subs)
		}
		if !snapped {
			if subs[dbPath] == "" || !strings.HasPrefix(subs[dbPath], staging) {
				t.Fatalf("backup %d: substitutes %v, want a copy of %s in %s", i, subs, dbPath, staging)
			}
			for orig, sub := range subs {
				if orig == dbPath {
					continue
				}
				if fi, err := os.Stat(sub); err != nil || fi.Size() != 0 {
					t.Fatalf("backup %d: companion %s is substituted by %s, want an empty file (%v)", i, orig, sub, err)
				}
			}
		}
		// No hot journal may sit next to the copy: SQLite would roll it
		// back into the database on open. (A -wal may hold frames under a
		// snapshot, but only frames already in the main file.)
		if fi, err := os.Stat(copyPath + "-journal"); err == nil && fi.Size() != 0 {
			t.Fatalf("backup %d: %s-journal holds %d bytes: a transaction was half-written", i, rel, fi.Size())
		}
		// The main file alone is the database, unless the writer said
		// that the WAL checkpoint under its lock ran out of time.
		if slices.ContainsFunc(res.Frozen.Notes, func(n string) bool { return strings.Contains(n, "checkpoint did not finish") }) {
			n := sqliteVerify(t, copyPath)
			seen[n] = true
			verified++
			t.Logf("backup %d: frozen, WAL checkpoint unfinished; the copy with its -wal holds %d transfers", i, n)
			continue
		}
		alone := filepath.Join(t.TempDir(), "alone.db")
		sqliteCopyMainOnly(t, copyPath, alone)
		n := sqliteVerify(t, alone)
		if m := sqliteVerify(t, copyPath); m != n {
			t.Fatalf("backup %d: main file alone holds %d transfers, with its companions %d", i, n, m)
		}
		seen[n] = true
		verified++
	}
	if len(seen) < verified/2 {
		t.Errorf("only %d distinct states in %d verified copies: was the writer running?", len(seen), verified)
	}
	t.Logf("%d backups: %d frozen, %d not frozen in %s; %d copies verified, %d distinct states; freeze-to-thaw %s; freeze %s; snapshot set %s",
		sqliteBackups, frozen, sqliteBackups-frozen, sqliteLoadTimeout, verified, len(seen), sqliteSummary(held), sqliteSummary(freeze), sqliteSummary(create))
}

func sqliteSummary(ds []time.Duration) string {
	var maxD, sum time.Duration
	for _, d := range ds {
		sum += d
		maxD = max(maxD, d)
	}
	return "mean " + (sum / time.Duration(len(ds))).Round(time.Millisecond).String() + ", max " + maxD.Round(time.Millisecond).String() + " (" + strconv.Itoa(len(ds)) + " runs)"
}

// Under a btrfs snapshot, a database whose write lock another connection
// keeps for the whole timeout, half-way through a transaction that has
// already spilled into the database file, times out as crash-consistent:
// taken without the freeze, the snapshot holds the torn database with its
// hot journal, and the copy opens as the last committed state.
func TestSQLiteTimeoutUnderSnapshot(t *testing.T) {
	mnt := loopfs.Btrfs(t, 256)
	src := filepath.Join(mnt, "srv", "app")
	db := filepath.Join(src, "bank.db")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	sqliteCreateBankPortable(t, db)
	sqliteHoldLock(t, db, "IMMEDIATE")
	if fi, err := os.Stat(db + "-journal"); err != nil || fi.Size() == 0 {
		t.Fatalf("the held transaction left no journal (%v)", err)
	}
	plan, err := snapshot.NewPlan([]snapshot.Source{{Path: src, Policy: snapshot.Required}}, snapshot.Options{RunID: "sqlitetimeout"})
	if err != nil {
		t.Fatal(err)
	}

	w := NewSQLite(db, 300*time.Millisecond)
	_, err = w.Freeze(context.Background(), FreezeInfo{Covered: dbCoveredOf(plan), StagingDir: t.TempDir()})
	var te *TimeoutError
	if !errors.As(err, &te) || !te.CrashConsistent || len(te.NotWhole) != 0 || !strings.Contains(te.Error(), "crash-consistent") {
		t.Fatalf("freeze under a snapshot: %v, want a crash-consistent *TimeoutError", err)
	}
	w.Thaw(context.Background())

	out := t.TempDir()
	res := dbBackupOnce(t, SnapOnTimeout(NewSQLite(db, 300*time.Millisecond)), plan, t.TempDir(), mnt, out)
	if res.Frozen.Timeout == nil || len(res.Frozen.Substitutes) != 0 {
		t.Fatalf("on-timeout snap: %+v", res.Frozen)
	}
	cp := filepath.Join(out, "srv", "app", "bank.db")
	if fi, err := os.Stat(cp + "-journal"); err != nil || fi.Size() == 0 {
		t.Fatalf("the snapshot holds no hot journal (%v): the test did not catch a transaction half-way", err)
	}
	// The database alone is torn: only the journal makes it whole.
	alone := filepath.Join(t.TempDir(), "alone.db")
	sqliteCopyMainOnly(t, cp, alone)
	if d, err := sql.Open("sqlite", alone); err == nil {
		var ok string
		if d.QueryRow("PRAGMA integrity_check").Scan(&ok); ok == "ok" {
			t.Fatal("the database alone is whole: the held transaction did not spill into it")
		}
		d.Close()
	}
	sqliteCheckPortableBank(t, cp)
}

// sqliteCheckPortableBank opens a copy of sqliteCreateBankPortable's bank
// (recovering it from its journal) and checks it is the committed state.
func sqliteCheckPortableBank(t *testing.T, path string) {
	t.Helper()
	d, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var ok string
	var n, sum int
	if err := d.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("%s: integrity_check = %q, %v", path, ok, err)
	}
	if err := d.QueryRow("SELECT count(*), sum(balance) FROM accounts").Scan(&n, &sum); err != nil || n != 40 || sum != 40000 {
		t.Fatalf("%s: %d accounts holding %d (%v), want 40 holding 40000", path, n, sum, err)
	}
}
