package quiesce

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/loopfs"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/pgserver"
)

const (
	pgAccounts = 200
	pgBalance  = 1000
	pgBackups  = 3
)

// pgWorkload moves money between accounts in transactions on conns
// connections, logging each transfer in history, until ctx ends. It returns
// a wait function giving the number of committed transfers.
func pgWorkload(ctx context.Context, t *testing.T, dsn string, conns int) func() int64 {
	var n atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close(context.Background())
			for ctx.Err() == nil {
				a, b := rand.IntN(pgAccounts), rand.IntN(pgAccounts)
				if a == b {
					continue
				}
				from, to, amount := a, b, 1+rand.IntN(50)
				a, b = min(a, b), max(a, b) // one lock order: no deadlocks
				err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
					for _, id := range []int{a, b} {
						delta := amount
						if id == from {
							delta = -amount
						}
						if _, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance + $1 WHERE id = $2", delta, id); err != nil {
							return err
						}
					}
					_, err := tx.Exec(ctx, "INSERT INTO history (from_id, to_id, amount) VALUES ($1, $2, $3)", from, to, amount)
					return err
				})
				if err == nil {
					n.Add(1)
				} else if ctx.Err() == nil {
					t.Errorf("transfer: %v", err)
					return
				}
			}
		}()
	}
	return func() int64 { wg.Wait(); return n.Load() }
}

// pgVerify checks that the cluster holds a consistent bank: the total is
// unchanged and every balance agrees with the history of transfers. It
// returns the number of transfers.
func pgVerify(ctx context.Context, t *testing.T, c *pgx.Conn, what string) int64 {
	t.Helper()
	var n, sum int64
	if err := c.QueryRow(ctx, "SELECT count(*), sum(balance) FROM accounts").Scan(&n, &sum); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if n != pgAccounts || sum != pgAccounts*pgBalance {
		t.Fatalf("%s: %d accounts holding %d, want %d holding %d", what, n, sum, pgAccounts, pgAccounts*pgBalance)
	}
	var bad, transfers int64
	err := c.QueryRow(ctx, `
		WITH moved AS (
			SELECT id, sum(d) AS d FROM (
				SELECT from_id AS id, -amount AS d FROM history
				UNION ALL SELECT to_id, amount FROM history) x GROUP BY id)
		SELECT (SELECT count(*) FROM accounts a LEFT JOIN moved m USING (id)
		        WHERE a.balance <> $1 + coalesce(m.d, 0)),
		       (SELECT count(*) FROM history)`, pgBalance).Scan(&bad, &transfers)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if bad != 0 {
		t.Fatalf("%s: %d balances disagree with the history of transfers", what, bad)
	}
	return transfers
}

// A PostgreSQL server with its data directory on btrfs takes transfers on
// two connections while three backups are made as a run makes them; each
// copy, started as a server of its own, recovers and holds a consistent
// bank. The writer refuses a run that would copy the cluster without one
// volume snapshot of all its files.
func TestPostgresWriter(t *testing.T) {
	mnt := loopfs.Btrfs(t, 1024)
	src := filepath.Join(mnt, "srv", "pg")
	srv := pgserver.Start(t, filepath.Join(src, "data"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := srv.Connect(ctx, t, "")
	for _, q := range []string{
		"CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL)",
		"CREATE TABLE history (id bigserial PRIMARY KEY, from_id int NOT NULL, to_id int NOT NULL, amount int NOT NULL)",
		fmt.Sprintf("INSERT INTO accounts SELECT g, %d FROM generate_series(0, %d) g", pgBalance, pgAccounts-1),
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	plan, err := snapshot.NewPlan([]snapshot.Source{{Path: src, Policy: snapshot.Required}}, snapshot.Options{RunID: "pgtest"})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("backups", func(t *testing.T) {
		wctx, stop := context.WithCancel(ctx)
		wait := pgWorkload(wctx, t, srv.DSN(""), 2)
		var outs []string
		for i := 0; i < pgBackups; i++ {
			// Let transfers happen between backups, measured, not slept for.
			before := pgCount(ctx, t, c)
			for pgCount(ctx, t, c) < before+50 {
				time.Sleep(10 * time.Millisecond)
			}
			out := t.TempDir()
			// The second backup forces a checkpoint, the others restore
			// from the server's own last one.
			var opts []DBOption
			want := "by crash recovery, replaying the WAL from the server's last checkpoint"
			if i == 1 {
				opts, want = []DBOption{ForceCheckpoint()}, "checkpoint in "
			}
			res := dbBackupOnce(t, NewPostgres(srv.DSN(""), 30*time.Second, opts...), plan, t.TempDir(), mnt, out)
			t.Logf("backup %d: freeze %s, snapshot set %s, notes %q", i, res.Freeze.Round(time.Millisecond), res.Create.Round(time.Millisecond), res.Frozen.Notes)
			if !slices.ContainsFunc(res.Frozen.Notes, func(n string) bool { return strings.Contains(n, want) }) {
				t.Errorf("backup %d: no note says %q: %q", i, want, res.Frozen.Notes)
			}
			outs = append(outs, out)
		}
		stop()
		t.Logf("%d transfers committed during the backups", wait())
		seen := map[int64]bool{}
		for i, out := range outs {
			data := filepath.Join(out, "srv", "pg", "data")
			// A restore on another machine has no postmaster running;
			// here the original one still is, and would be taken for it.
			os.Remove(filepath.Join(data, "postmaster.pid"))
			cp := pgserver.Start(t, data)
			cc := cp.Connect(ctx, t, "")
			n := pgVerify(ctx, t, cc, fmt.Sprintf("copy %d", i))
			seen[n] = true
			log, _ := os.ReadFile(cp.Log)
			if !strings.Contains(string(log), "redo") {
				t.Logf("copy %d: no WAL replay in the log:\n%s", i, log)
			}
			cc.Close(ctx)
			cp.Stop()
		}
		if len(seen) != pgBackups {
			t.Errorf("copies hold transfer counts %v: the workload did not run between backups", seen)
		}
		pgVerify(ctx, t, c, "live server")
	})

	t.Run("no-snapshot", func(t *testing.T) {
		w := NewPostgres(srv.DSN(""), 30*time.Second)
		_, err := w.Freeze(ctx, FreezeInfo{StagingDir: t.TempDir()})
		pgExpect(t, err, "copying a live PostgreSQL cluster file by file is not a backup", "dump hook")
		if err := w.Thaw(ctx); err != nil {
			t.Errorf("thaw after failed freeze: %v", err)
		}
		w = NewPostgres(srv.DSN(""), 30*time.Second, AllowUncoveredFiles())
		fr, err := w.Freeze(ctx, FreezeInfo{StagingDir: t.TempDir()})
		if err != nil {
			t.Fatalf("with a dump hook: %v", err)
		}
		if len(fr.Notes) == 0 || !strings.Contains(fr.Notes[0], "dump hook") {
			t.Errorf("notes %q do not say the files are not a backup", fr.Notes)
		}
		if err := w.Thaw(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("per-file-clones", func(t *testing.T) {
		w := NewPostgres(srv.DSN(""), 30*time.Second)
		_, err := w.Freeze(ctx, FreezeInfo{Covered: map[string]string{src: "file"}})
		pgExpect(t, err, "data directory "+filepath.Join(src, "data"), "file consistency", "one btrfs subvolume")
		w.Thaw(ctx)
	})

	t.Run("tablespace-outside", func(t *testing.T) {
		ts := filepath.Join(t.TempDir(), "ts")
		pgMkdirFor(t, ts, srv)
		if _, err := c.Exec(ctx, "CREATE TABLESPACE outside LOCATION '"+ts+"'"); err != nil {
			t.Fatal(err)
		}
		defer c.Exec(ctx, "DROP TABLESPACE outside")
		w := NewPostgres(srv.DSN(""), 30*time.Second)
		_, err := w.Freeze(ctx, FreezeInfo{Covered: dbCoveredOf(plan)})
		pgExpect(t, err, "tablespace outside "+ts, "not in any snapshot", "one btrfs subvolume")
		w.Thaw(ctx)
	})

	t.Run("pg_wal-outside", func(t *testing.T) {
		src2 := filepath.Join(mnt, "srv", "pg2")
		walDir := filepath.Join(t.TempDir(), "wal")
		srv2 := pgserver.StartWith(t, filepath.Join(src2, "data"), pgserver.Options{WalDir: walDir})
		plan2, err := snapshot.NewPlan([]snapshot.Source{{Path: src2, Policy: snapshot.Required}}, snapshot.Options{RunID: "pgtest"})
		if err != nil {
			t.Fatal(err)
		}
		w := NewPostgres(srv2.DSN(""), 30*time.Second)
		_, err = w.Freeze(ctx, FreezeInfo{Covered: dbCoveredOf(plan2)})
		pgExpect(t, err, "WAL directory "+walDir, "not in any snapshot", "put the data directory and pg_wal")
		if err := w.Thaw(ctx); err != nil {
			t.Errorf("thaw after failed freeze: %v", err)
		}
		// Both in the set, but in two snapshots made one after the other.
		covered := map[string]string{src2: "volume", walDir: "volume"}
		_, err = w.Freeze(ctx, FreezeInfo{Covered: covered})
		pgExpect(t, err, "WAL directory "+walDir, "not at one instant")
		w.Thaw(ctx)
	})
}

// The writer runs CHECKPOINT only with ForceCheckpoint: without it the
// server's last checkpoint stays where it was, and the note says the
// snapshot restores by crash recovery from it, with its age when the user
// may read pg_control_checkpoint() and without it (but no failure) when not.
func TestPostgresWriterCheckpoint(t *testing.T) {
	mnt := loopfs.Btrfs(t, 512)
	src := filepath.Join(mnt, "srv", "pg")
	srv := pgserver.Start(t, filepath.Join(src, "data"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := srv.Connect(ctx, t, "")
	plan, err := snapshot.NewPlan([]snapshot.Source{{Path: src, Policy: snapshot.Required}}, snapshot.Options{RunID: "pgtest"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "CREATE TABLE t (id serial PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	// freeze writes a row (WAL a checkpoint would cover), freezes and
	// thaws w, and returns the notes and whether the server's last
	// checkpoint moved meanwhile.
	freeze := func(t *testing.T, w *Postgres) (notes []string, checkpointed bool) {
		t.Helper()
		if _, err := c.Exec(ctx, "INSERT INTO t (v) VALUES ('x')"); err != nil {
			t.Fatal(err)
		}
		before := pgLastCheckpoint(ctx, t, c)
		fr, err := w.Freeze(ctx, FreezeInfo{Covered: dbCoveredOf(plan)})
		if err != nil {
			w.Thaw(ctx)
			t.Fatalf("freeze: %v", err)
		}
		if err := w.Thaw(ctx); err != nil {
			t.Fatal(err)
		}
		after := pgLastCheckpoint(ctx, t, c)
		t.Logf("last checkpoint %s -> %s; notes %q", before, after, fr.Notes)
		return fr.Notes, before != after
	}

	t.Run("default", func(t *testing.T) {
		notes, checkpointed := freeze(t, NewPostgres(srv.DSN(""), 30*time.Second))
		if checkpointed {
			t.Error("the writer checkpointed without ForceCheckpoint")
		}
		if len(notes) != 1 || !strings.Contains(notes[0], "the snapshot restores by crash recovery, replaying the WAL from the server's last checkpoint") ||
			!regexp.MustCompile(`\(last checkpoint ((\d+[hms])+|under a second) before the snapshot\)`).MatchString(notes[0]) {
			t.Errorf("notes %q do not say the snapshot restores by crash recovery from a checkpoint of a given age", notes)
		}
	})

	t.Run("forced", func(t *testing.T) {
		notes, checkpointed := freeze(t, NewPostgres(srv.DSN(""), 30*time.Second, ForceCheckpoint()))
		if !checkpointed {
			t.Error("the writer did not checkpoint with ForceCheckpoint")
		}
		if len(notes) != 1 || !strings.Contains(notes[0], "checkpoint in ") {
			t.Errorf("notes %q do not give the checkpoint's duration", notes)
		}
	})

	// A user who may read the settings but not pg_control_checkpoint():
	// the freeze works, the note leaves the age out.
	t.Run("age-refused", func(t *testing.T) {
		for _, q := range []string{
			"CREATE ROLE snapper LOGIN",
			"GRANT pg_read_all_settings TO snapper",
			"REVOKE EXECUTE ON FUNCTION pg_control_checkpoint() FROM PUBLIC",
		} {
			if _, err := c.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		dsn := strings.Replace(srv.DSN(""), "//"+srv.User+"@", "//snapper@", 1)
		uc, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		var at time.Time
		if err := uc.QueryRow(ctx, "SELECT checkpoint_time FROM pg_control_checkpoint()").Scan(&at); err == nil {
			t.Fatal("snapper may read pg_control_checkpoint(): the case is not tested")
		}
		uc.Close(ctx)
		notes, checkpointed := freeze(t, NewPostgres(dsn, 30*time.Second))
		if checkpointed {
			t.Error("the writer checkpointed without ForceCheckpoint")
		}
		if len(notes) != 1 || !strings.Contains(notes[0], "crash recovery") || strings.Contains(notes[0], "(last checkpoint") {
			t.Errorf("notes %q: want crash recovery without the age", notes)
		}
	})
}

// pgLastCheckpoint returns where the server's last checkpoint is (its LSN,
// from the control file, on every version since 9.6).
func pgLastCheckpoint(ctx context.Context, t *testing.T, c *pgx.Conn) string {
	t.Helper()
	var lsn string
	if err := c.QueryRow(ctx, "SELECT checkpoint_lsn::text FROM pg_control_checkpoint()").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	return lsn
}

func pgCount(ctx context.Context, t *testing.T, c *pgx.Conn) int64 {
	t.Helper()
	var n int64
	if err := c.QueryRow(ctx, "SELECT count(*) FROM history").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func pgMkdirFor(t *testing.T, dir string, srv *pgserver.Server) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(srv.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, int(fi.Sys().(*syscall.Stat_t).Uid), 0); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(dir); d != "/"; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			os.Chmod(d, fi.Mode().Perm()|0o711)
		}
	}
}

// pgExpect checks that err is a refusal whose message names all of want.
func pgExpect(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("freeze succeeded, want an error naming %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	var ue *dbUncoveredError
	if !errors.As(err, &ue) && !errors.Is(err, errDBNoSnapshot) {
		t.Errorf("error %v is not a coverage refusal", err)
	}
}
