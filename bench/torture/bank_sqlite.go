//go:build linux

package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // the pure Go driver "sqlite"
)

// bankSQLite is a SQLite database of accounts; each transaction moves money
// between two of them (and appends to a history table), so the total never
// changes. journal is SQLite's journal mode: "delete" (rollback journal) or
// "wal".
type bankSQLite struct{ journal string }

const (
	bankDB       = "bank.db"
	bankStartBal = 1000
)

func (b *bankSQLite) name() string {
	if b.journal == "wal" {
		return "bank-sqlite-wal"
	}
	return "bank-sqlite-rollback"
}

// sqliteDSN opens path read-write with a long busy timeout: a writer held
// by stillpoint's SQLite writer waits rather than fails, and the wait shows
// as latency.
func sqliteDSN(path, journal string) string {
	return "file:" + path + "?_pragma=busy_timeout(60000)&_pragma=journal_mode(" + journal + ")&_txlock=immediate"
}

func (b *bankSQLite) template(ctx context.Context, cfg *config, dir string) error {
	db, err := sql.Open("sqlite", sqliteDSN(filepath.Join(dir, bankDB), b.journal))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, pad BLOB);
		CREATE TABLE history(id INTEGER PRIMARY KEY, src INTEGER, dst INTEGER, amount INTEGER, at INTEGER)`); err != nil {
		return err
	}
	// pad makes the table span many pages, so that a copy takes long
	// enough for transactions to land in it
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	pad := make([]byte, 200)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range cfg.sqliteAccounts {
		for j := range pad {
			pad[j] = byte(r.Uint32())
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO accounts VALUES(?, ?, ?)", i, bankStartBal, pad); err != nil {
			tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

func (b *bankSQLite) setup(ctx context.Context, e *wlEnv) error {
	return copyFile(filepath.Join(e.template, bankDB), filepath.Join(e.src, bankDB))
}

func (b *bankSQLite) start(ctx context.Context, e *wlEnv, window int) (running, error) {
	return startWork(ctx, e, latPath(e, window), "bank-sqlite", "-db", filepath.Join(e.src, bankDB),
		"-journal", b.journal, "-accounts", fmt.Sprint(e.cfg.sqliteAccounts))
}

func (b *bankSQLite) writerEntry(e *wlEnv) string {
	return "- sqlite: " + yamlQuote(filepath.Join(e.src, bankDB))
}

func (b *bankSQLite) verify(ctx context.Context, e *wlEnv, restored string) verdict {
	return verifyBankSQLite(ctx, filepath.Join(restored, bankDB), e.cfg.sqliteAccounts)
}

func (b *bankSQLite) teardown(*wlEnv) {}

// verifyBankSQLite opens the database with SQLite, read-write, so that a hot
// rollback journal is rolled back and a WAL replayed, as after a crash; then
// the database must pass integrity_check and hold every account and the
// whole total.
func verifyBankSQLite(ctx context.Context, path string, accounts int) verdict {
	if _, err := os.Stat(path); err != nil {
		return tornf("%v", err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return tornf("open: %v", err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil {
		return tornf("integrity_check: %v", err)
	}
	if check != "ok" {
		return tornf("integrity_check: %s", check)
	}
	var n, total int64
	if err := db.QueryRowContext(ctx, "SELECT count(*), coalesce(sum(balance), 0) FROM accounts").Scan(&n, &total); err != nil {
		return tornf("sum: %v", err)
	}
	if want := int64(accounts) * bankStartBal; n != int64(accounts) || total != want {
		return tornf("%d accounts holding %d, want %d holding %d", n, total, accounts, want)
	}
	return verdict{}
}

// workBankSQLite is the application: transfers until stopped, one
// transaction each, a millisecond or two apart.
func workBankSQLite(args []string) error {
	fs := flag.NewFlagSet("bank-sqlite", flag.ContinueOnError)
	path := fs.String("db", "", "database")
	journal := fs.String("journal", "delete", "journal mode")
	accounts := fs.Int("accounts", 0, "number of accounts")
	wf := addWriterFlags(fs)
	lat, err := wf.parse(fs, args)
	if err != nil {
		return err
	}
	defer lat.close()
	db, err := sql.Open("sqlite", sqliteDSN(*path, *journal))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		return err
	}
	ctl, err := newAppControl(*wf.aux, lat)
	if err != nil {
		return err
	}
	defer ctl.close()
	ready()
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	for ctl.safePoint() {
		a := r.IntN(*accounts)
		b := (a + 1 + r.IntN(*accounts-1)) % *accounts
		start := time.Now()
		if err := sqliteTransfer(db, a, b, 1+r.IntN(100)); err != nil {
			return err
		}
		lat.add(start, time.Since(start))
		ctl.idle(time.Duration(500+r.IntN(1500)) * time.Microsecond)
	}
	return nil
}

func sqliteTransfer(db *sql.DB, a, b, amount int) error {
	tx, err := db.Begin() // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return err
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{"UPDATE accounts SET balance = balance - ? WHERE id = ?", []any{amount, a}},
		{"UPDATE accounts SET balance = balance + ? WHERE id = ?", []any{amount, b}},
		{"INSERT INTO history(src, dst, amount, at) VALUES(?, ?, ?, ?)", []any{a, b, amount, time.Now().UnixNano()}},
	} {
		if _, err := tx.Exec(q.sql, q.args...); err != nil {
			tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}
