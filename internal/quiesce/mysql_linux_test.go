package quiesce

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/loopfs"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/mysqlserver"
)

const (
	myAccounts = 200
	myBalance  = 1000
	myBackups  = 3
)

// myWorkload moves money until ctx ends: in InnoDB in transactions that
// also log to a history table, and in MyISAM (no transactions) with single
// statements that change two rows, each statement atomic for the server.
// It returns a wait function giving the number of transfers.
func myWorkload(ctx context.Context, t *testing.T, db *sql.DB) func() int64 {
	var n atomic.Int64
	var wg sync.WaitGroup
	pick := func() (int, int, int) {
		for {
			a, b := rand.IntN(myAccounts), rand.IntN(myAccounts)
			if a != b {
				return a, b, 1 + rand.IntN(50)
			}
		}
	}
	run := func(name string, transfer func(from, to, amount int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				from, to, amount := pick()
				if err := transfer(from, to, amount); err != nil {
					if ctx.Err() == nil {
						t.Errorf("%s transfer: %v", name, err)
					}
					return
				}
				n.Add(1)
			}
		}()
	}
	run("InnoDB", func(from, to, amount int) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{"UPDATE inno SET balance = balance - ? WHERE id = ?", []any{amount, from}},
			{"UPDATE inno SET balance = balance + ? WHERE id = ?", []any{amount, to}},
			{"INSERT INTO history (from_id, to_id, amount) VALUES (?, ?, ?)", []any{from, to, amount}},
		} {
			if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
				return err
			}
		}
		return tx.Commit()
	})
	run("MyISAM", func(from, to, amount int) error {
		_, err := db.ExecContext(ctx, `UPDATE myi SET balance = balance + CASE id WHEN ? THEN ? ELSE ? END,
			moves = moves + 1 WHERE id IN (?, ?)`, from, -amount, amount, from, to)
		return err
	})
	return func() int64 { wg.Wait(); return n.Load() }
}

// myVerify checks every table with CHECK TABLE and the totals; it returns
// the InnoDB and MyISAM transfer counts.
func myVerify(ctx context.Context, t *testing.T, db *sql.DB, what string) (inno, myi int64) {
	t.Helper()
	for _, tbl := range []string{"inno", "history", "myi"} {
		rows, err := db.QueryContext(ctx, "CHECK TABLE "+tbl)
		if err != nil {
			t.Fatalf("%s: CHECK TABLE %s: %v", what, tbl, err)
		}
		var msgs []string
		status := ""
		for rows.Next() {
			var table, op, typ, text string
			if err := rows.Scan(&table, &op, &typ, &text); err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, typ+": "+text)
			if typ == "status" {
				status = text
			}
		}
		rows.Close()
		// Any warning counts: a MyISAM table copied without the lock
		// reports "1 client is using or hasn't closed the table properly"
		// (seen on every copy without the writer) even when its rows are
		// still readable.
		if status != "OK" || len(msgs) != 1 {
			t.Fatalf("%s: CHECK TABLE %s: %q", what, tbl, msgs)
		}
	}
	for _, tbl := range []string{"inno", "myi"} {
		var n, sum int64
		if err := db.QueryRowContext(ctx, "SELECT count(*), sum(balance) FROM "+tbl).Scan(&n, &sum); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if n != myAccounts || sum != myAccounts*myBalance {
			t.Fatalf("%s: %s: %d accounts holding %d, want %d holding %d", what, tbl, n, sum, myAccounts, myAccounts*myBalance)
		}
	}
	var bad int64
	err := db.QueryRowContext(ctx, `
		SELECT count(*) FROM inno a LEFT JOIN (
			SELECT id, sum(d) AS d FROM (
				SELECT from_id AS id, -amount AS d FROM history
				UNION ALL SELECT to_id, amount FROM history) x GROUP BY id) m USING (id)
		WHERE a.balance <> ? + coalesce(m.d, 0)`, myBalance).Scan(&bad)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if bad != 0 {
		t.Fatalf("%s: %d InnoDB balances disagree with the history of transfers", what, bad)
	}
	if err := db.QueryRowContext(ctx, "SELECT (SELECT count(*) FROM history), (SELECT sum(moves) DIV 2 FROM myi)").Scan(&inno, &myi); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return inno, myi
}

// A MariaDB server with its data directory on btrfs takes transfers in an
// InnoDB and a MyISAM table while three backups are made as a run makes
// them; each copy starts as a server of its own, CHECK TABLE passes on
// every table and the totals hold. MyISAM is the table a snapshot without
// FLUSH TABLES WITH READ LOCK breaks: its index and data files are flushed
// by the server, not by a log that crash recovery replays.
func TestMySQLWriter(t *testing.T) {
	mnt := loopfs.Btrfs(t, 1024)
	src := filepath.Join(mnt, "srv", "mysql")
	srv := mysqlserver.Start(t, filepath.Join(src, "data"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root := srv.DB(t, "")
	if _, err := root.ExecContext(ctx, "CREATE DATABASE bank"); err != nil {
		t.Fatal(err)
	}
	db := srv.DB(t, "bank")
	for _, q := range []string{
		"CREATE TABLE inno (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB",
		"CREATE TABLE history (id BIGINT AUTO_INCREMENT PRIMARY KEY, from_id INT NOT NULL, to_id INT NOT NULL, amount INT NOT NULL) ENGINE=InnoDB",
		// The secondary index changes with every transfer: a torn .MYI shows.
		"CREATE TABLE myi (id INT PRIMARY KEY, balance BIGINT NOT NULL, moves INT NOT NULL, pad CHAR(200) NOT NULL, KEY (balance)) ENGINE=MyISAM",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for i := 0; i < myAccounts; i++ {
		if _, err := db.ExecContext(ctx, "INSERT INTO inno VALUES (?, ?)", i, myBalance); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO myi VALUES (?, ?, 0, ?)", i, myBalance, strings.Repeat("x", 200)); err != nil {
			t.Fatal(err)
		}
	}
	plan, err := snapshot.NewPlan([]snapshot.Source{{Path: src, Policy: snapshot.Required}}, snapshot.Options{RunID: "mysqltest"})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("backups", func(t *testing.T) {
		wctx, stop := context.WithCancel(ctx)
		wait := myWorkload(wctx, t, db)
		count := func() int64 {
			var n int64
			if err := db.QueryRowContext(ctx, "SELECT (SELECT count(*) FROM history) + (SELECT sum(moves) FROM myi)").Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		var outs []string
		for i := 0; i < myBackups; i++ {
			// Let transfers happen between backups, measured, not slept for.
			before := count()
			for count() < before+100 {
				time.Sleep(10 * time.Millisecond)
			}
			out := t.TempDir()
			w := NewMySQL(srv.DSN(""), 30*time.Second)
			res := dbBackupOnce(t, w, plan, t.TempDir(), mnt, out)
			t.Logf("backup %d: freeze %s, snapshot set %s, notes %q", i, res.Freeze.Round(time.Millisecond), res.Create.Round(time.Millisecond), res.Frozen.Notes)
			outs = append(outs, out)
		}
		stop()
		t.Logf("%d transfers during the backups", wait())
		seen := map[[2]int64]bool{}
		for i, out := range outs {
			cp := mysqlserver.Start(t, filepath.Join(out, "srv", "mysql", "data"))
			cdb := cp.DB(t, "bank")
			inno, myi := myVerify(ctx, t, cdb, fmt.Sprintf("copy %d", i))
			seen[[2]int64{inno, myi}] = true
			cdb.Close()
			cp.Stop()
		}
		if len(seen) != myBackups {
			t.Errorf("copies hold transfer counts %v: the workload did not run between backups", seen)
		}
		myVerify(ctx, t, db, "live server")
	})

	// A long write keeps FLUSH TABLES WITH READ LOCK waiting past the
	// writer's timeout: a crash-consistent *TimeoutError, the read lock
	// given up, and writes go on.
	t.Run("timeout", func(t *testing.T) {
		long := srv.DB(t, "bank")
		done := make(chan error, 1)
		go func() {
			_, err := long.ExecContext(ctx, "UPDATE myi SET moves = moves + SLEEP(60) WHERE id = 0")
			done <- err
		}()
		var id int64
		for deadline := time.Now().Add(30 * time.Second); id == 0; time.Sleep(20 * time.Millisecond) {
			root.QueryRowContext(ctx, "SELECT id FROM information_schema.processlist WHERE info LIKE 'UPDATE myi SET moves = moves + SLEEP(60)%'").Scan(&id)
			if time.Now().After(deadline) {
				t.Fatal("the long query did not start")
			}
		}
		defer func() {
			root.ExecContext(ctx, fmt.Sprintf("KILL QUERY %d", id))
			<-done
		}()
		sw := SnapOnTimeout(NewMySQL(srv.DSN(""), time.Second))
		fr, err := sw.Freeze(ctx, FreezeInfo{Covered: dbCoveredOf(plan)})
		if err != nil || fr.Timeout == nil || !fr.Timeout.CrashConsistent || len(fr.Timeout.NotWhole) != 0 ||
			!strings.Contains(fr.Timeout.Error(), "FLUSH TABLES WITH READ LOCK") || !strings.Contains(fr.Timeout.Error(), "InnoDB recovers") {
			t.Fatalf("freeze behind a long query: %+v, %v; want a crash-consistent timeout", fr, err)
		}
		if err := sw.Thaw(ctx); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := db.ExecContext(wctx, "UPDATE inno SET balance = balance WHERE id = 0"); err != nil {
			t.Fatalf("a write after the timed-out freeze: %v", err)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		w := NewMySQL(srv.DSN(""), 30*time.Second)
		_, err := w.Freeze(ctx, FreezeInfo{StagingDir: t.TempDir()})
		pgExpect(t, err, "copying a live MariaDB/MySQL cluster file by file is not a backup", "dump hook")
		if err := w.Thaw(ctx); err != nil {
			t.Errorf("thaw after failed freeze: %v", err)
		}
		_, err = w.Freeze(ctx, FreezeInfo{Covered: map[string]string{src: "file"}})
		pgExpect(t, err, "data directory "+filepath.Join(src, "data"), "file consistency")
		w.Thaw(ctx)
		w = NewMySQL(srv.DSN(""), 30*time.Second, AllowUncoveredFiles())
		if _, err := w.Freeze(ctx, FreezeInfo{}); err != nil {
			t.Fatalf("with a dump hook: %v", err)
		}
		if err := w.Thaw(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
