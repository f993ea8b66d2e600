package quiesce

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite" // registers the pure Go driver "sqlite"
)

// SQLite makes one SQLite database consistent for the run.
//
// Under a volume snapshot it holds the database's write lock (BEGIN
// IMMEDIATE on one pinned connection) from Freeze to Thaw and, in WAL mode,
// checkpoints every frame into the main file under that lock: the snapshot
// then holds a main file that is the whole database on its own (no hot
// journal, no frame only the -wal holds), whatever the application does.
// Readers go on; writers wait (their busy timeout) for the milliseconds the
// snapshot set takes.
//
// Without a volume snapshot (a live read, or per-file reflink clones, which
// are taken later and not together with the -wal file) it copies the
// database with SQLite's online backup API into the staging directory and
// substitutes the copy. The backup API is used rather than VACUUM INTO
// because it copies pages as they are (no rebuild, so it is cheap on CPU
// and keeps the file byte-compatible) from one read transaction, so the copy
// is one committed state.
//
// When the lock or the copy does not come within the timeout (an
// application that writes back to back on a busy machine), Freeze returns
// a *TimeoutError: under a snapshot of the whole filesystem the database
// and its journal or WAL are still in it at one instant, which SQLite
// recovers on open (crash-consistent); read live, its files are not whole
// and the error lists them.
type SQLite struct {
	path    string
	timeout time.Duration

	db   *sql.DB
	conn *sql.Conn
	inTx bool
	// oneInstant: this run's snapshot holds the database's directory at
	// one instant.
	oneInstant bool
}

// NewSQLite returns a writer for the database at path. timeout bounds
// Freeze (waiting for the write lock, the checkpoint, the copy); 0 leaves
// only the run's deadline.
func NewSQLite(path string, timeout time.Duration) *SQLite {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return &SQLite{path: path, timeout: timeout}
}

// Name implements Writer.
func (s *SQLite) Name() string { return "sqlite " + s.path }

// sqliteCompanions are the files SQLite keeps next to a database.
var sqliteCompanions = []string{"-wal", "-shm", "-journal"}

// Freeze implements Writer.
func (s *SQLite) Freeze(ctx context.Context, info FreezeInfo) (*Frozen, error) {
	ctx, cancel := freezeContext(ctx, s.timeout)
	defer cancel()
	_, lvl := dbCoverageOf(info.Covered, dbRealPath(s.path))
	s.oneInstant = dbOneInstant(lvl)
	fi, err := os.Stat(s.path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (fix: the database path in the job)", s.Name(), err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", s.Name())
	}
	// mode=rw: never create an empty database where the job named a missing one.
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(s.path), RawQuery: "mode=rw"}
	if !strings.HasPrefix(u.Path, "/") { // Windows: file:///C:/x
		u.Path = "/" + u.Path
	}
	s.db, err = sql.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	s.db.SetMaxOpenConns(2) // the pinned connection and backfill's
	s.conn, err = s.db.Conn(ctx)
	if err != nil {
		return nil, s.fail(ctx, "open", err)
	}
	var mode string
	err = s.pollBusy(ctx, func() error {
		return s.conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode)
	})
	if err != nil {
		return nil, s.fail(ctx, "read journal mode", err)
	}
	mode = strings.ToLower(mode)

	if s.oneInstant {
		return s.lock(ctx, mode)
	}
	return s.substitute(ctx, info, mode)
}

// lock takes the write lock and, in WAL mode, makes sure every committed
// page is in the main file.
func (s *SQLite) lock(ctx context.Context, mode string) (*Frozen, error) {
	wal := mode == "wal"
	if wal {
		// Best effort, not waiting for anyone (pollBusy turned the busy
		// handler off): an empty WAL keeps the checkpoint under the lock
		// short.
		s.conn.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	}
	if err := s.beginImmediate(ctx); err != nil {
		return nil, s.fail(ctx, "take the write lock (BEGIN IMMEDIATE)", err)
	}
	s.inTx = true
	fr := &Frozen{}
	if !wal {
		// Holding RESERVED, no other transaction is half-written: there is
		// no hot journal and the main file is the database.
		fr.Notes = append(fr.Notes, fmt.Sprintf("%s: write lock held while snapping (journal mode %s)", s.Name(), mode))
		return fr, nil
	}
	done, err := s.backfill(ctx)
	if err != nil {
		return nil, s.fail(ctx, "checkpoint the WAL", err)
	}
	if !done {
		// The snapshot still holds the database and its -wal at one
		// instant, which SQLite recovers on open: a note, not a failure.
		fr.Notes = append(fr.Notes, fmt.Sprintf("%s: the WAL checkpoint did not finish before the freeze timeout (readers of older states, or a slow disk): restore %s-wal together with the database", s.Name(), filepath.Base(s.path)))
		return fr, nil
	}
	fr.Notes = append(fr.Notes, fmt.Sprintf("%s: write lock held and WAL checkpointed while snapping: the main file alone is the database", s.Name()))
	return fr, nil
}

// sqliteBusy is SQLite's primary result code for "locked by another
// connection".
const sqliteBusy = 5

// beginImmediate takes the write lock. SQLite's busy handler only retries
// after sleeps of milliseconds, so it never gets in between the
// transactions of an application that writes back to back; polling every
// few microseconds does, within the freeze deadline.
func (s *SQLite) beginImmediate(ctx context.Context) error {
	return s.pollBusy(ctx, func() error {
		_, err := s.conn.ExecContext(ctx, "BEGIN IMMEDIATE")
		return err
	})
}

// pollBusy runs f until it does not fail with SQLITE_BUSY, with the busy
// handler off and short pauses, until ctx ends.
func (s *SQLite) pollBusy(ctx context.Context, f func() error) error {
	if _, err := s.conn.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		return err
	}
	pause := 10 * time.Microsecond
	for {
		err := f()
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqliteBusy {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (%v)", err, ctx.Err())
		}
		time.Sleep(pause)
		pause = min(pause*2, 100*time.Microsecond)
	}
}

// backfill copies every WAL frame into the main file while we hold the
// write lock, so no new frame can come. A checkpoint cannot run inside our
// own transaction (SQLITE_LOCKED), so a second connection runs it, PASSIVE
// because TRUNCATE would wait for the write lock we hold. The -wal file
// keeps its frames, but they are all in the main file: replaying them on a
// restored pair changes nothing, and the main file alone is whole. It
// retries while readers of older states hold frames back, and reports
// false when they, or the checkpoint itself, outlast the deadline: the
// write lock still holds, so the database and its -wal are consistent
// together.
func (s *SQLite) backfill(ctx context.Context) (done bool, err error) {
	defer func() {
		if err != nil && ctx.Err() != nil {
			done, err = false, nil
		}
	}()
	c2, err := s.db.Conn(ctx)
	if err != nil {
		return false, err
	}
	defer c2.Close()
	wait := 30 * time.Second
	if d, ok := ctx.Deadline(); ok {
		wait = max(time.Until(d), time.Millisecond)
	}
	if _, err := c2.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", wait.Milliseconds())); err != nil {
		return false, err
	}
	pause := 100 * time.Microsecond
	for {
		var busy, logFrames, done int
		if err := c2.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logFrames, &done); err != nil {
			return false, err
		}
		if busy == 0 && done == logFrames {
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, nil
		case <-time.After(pause):
		}
		pause = min(pause*2, 20*time.Millisecond)
	}
}

// sqliteBackuper is what modernc's driver connection offers for the online
// backup API.
type sqliteBackuper interface {
	NewBackup(dstURI string) (*sqlite.Backup, error)
}

// substitute copies the database into the staging directory (under its
// original path) and substitutes the copy. The -wal, -shm and -journal
// files are substituted by empty files: stored next to the copy, a live
// -wal would be replayed onto it and a hot journal rolled back into it.
func (s *SQLite) substitute(ctx context.Context, info FreezeInfo, mode string) (*Frozen, error) {
	if info.StagingDir == "" {
		return nil, fmt.Errorf("%s: no snapshot covers the database and the run gave no staging directory for a copy", s.Name())
	}
	dst := filepath.Join(info.StagingDir, dbStagingRel(s.path))
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return nil, fmt.Errorf("%s: staging directory: %w", s.Name(), err)
	}
	if err := os.Remove(dst); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	du := url.URL{Scheme: "file", Path: filepath.ToSlash(dst)}
	if !strings.HasPrefix(du.Path, "/") {
		du.Path = "/" + du.Path
	}
	start := time.Now()
	// A read transaction pins one committed state for the copy. Taken by
	// polling for the same reason as the write lock (see beginImmediate);
	// in rollback-journal mode it makes writers wait at commit meanwhile.
	if _, err := s.conn.ExecContext(ctx, "BEGIN"); err != nil {
		return nil, s.fail(ctx, "begin a read transaction", err)
	}
	s.inTx = true
	err := s.pollBusy(ctx, func() error {
		var n int
		return s.conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n)
	})
	if err != nil {
		return nil, s.fail(ctx, "take a read lock", err)
	}
	err = s.conn.Raw(func(dc any) error {
		b, ok := dc.(sqliteBackuper)
		if !ok {
			return errors.New("the sqlite driver offers no online backup")
		}
		bk, err := b.NewBackup(du.String())
		if err != nil {
			return err
		}
		// One step copies every page, from our read transaction. Step is
		// not interruptible, so check the deadline around it.
		if err := ctx.Err(); err != nil {
			return errors.Join(err, bk.Finish())
		}
		_, err = bk.Step(-1)
		return errors.Join(err, bk.Finish())
	})
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return nil, s.fail(ctx, "copy with the online backup API to "+dst, err)
	}
	fr := &Frozen{Substitutes: map[string]string{s.path: dst}}
	// Also for companions missing now: a rollback journal comes and goes
	// with every transaction, and may exist when the archiver gets there.
	for _, suf := range sqliteCompanions {
		empty := dst + suf + ".empty"
		if err := os.WriteFile(empty, nil, 0o600); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name(), err)
		}
		fr.Substitutes[s.path+suf] = empty
	}
	fr.Notes = append(fr.Notes, fmt.Sprintf("%s: no volume snapshot covers it: copied with the online backup API in %s (journal mode %s); the copy is stored under the original path",
		s.Name(), time.Since(start).Round(time.Millisecond), mode))
	return fr, s.Thaw(ctx) // the copy is made: let writers go now
}

// Thaw implements Writer. It releases the lock (closing the connection
// would too) and is a no-op when Freeze did not get that far.
func (s *SQLite) Thaw(ctx context.Context) error {
	var err error
	if s.inTx && s.conn != nil {
		if _, rerr := s.conn.ExecContext(ctx, "ROLLBACK"); rerr != nil {
			err = fmt.Errorf("%s: rollback: %w (closing the connection releases the lock)", s.Name(), rerr)
		}
	}
	s.inTx = false
	return errors.Join(err, s.close())
}

func (s *SQLite) close() error {
	var errs []error
	if s.conn != nil {
		errs = append(errs, s.conn.Close())
		s.conn = nil
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
		s.db = nil
	}
	s.inTx = false
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: close: %w", s.Name(), err)
	}
	return nil
}

// fail closes what Freeze opened and words the error: a *TimeoutError when
// the writer's timeout passed.
func (s *SQLite) fail(ctx context.Context, step string, err error) error {
	cerr := s.close()
	awaitDeadline(ctx, err)
	if ctx.Err() != nil {
		err = fmt.Errorf("%w%s: a writer held the database longer than %s; raise the timeout or back up at a quieter time", err, ctxNote(ctx, err), timeoutWords(s.timeout))
	}
	err = errors.Join(fmt.Errorf("%s: %s: %w", s.Name(), step, err), cerr)
	if !freezeTimedOut(ctx) {
		return err
	}
	te := &TimeoutError{Writer: s.Name(), Err: err, CrashConsistent: s.oneInstant}
	if s.oneInstant {
		te.Consequence = fmt.Sprintf("the snapshot holds the database crash-consistent: SQLite recovers it from its journal or WAL when it is opened (restore %s with its -journal and -wal files)", filepath.Base(s.path))
	} else {
		te.Consequence = "no snapshot holds the database at one instant and no consistent copy was made, so its files are not stored as whole"
		te.NotWhole = append(te.NotWhole, s.path)
		for _, suf := range sqliteCompanions {
			te.NotWhole = append(te.NotWhole, s.path+suf)
		}
	}
	return te
}

// dbStagingRel is where below a staging directory a copy of the file at abs
// goes: its whole path, so copies of equal names cannot collide.
func dbStagingRel(abs string) string {
	v := filepath.VolumeName(abs)
	rest := strings.TrimLeft(abs[len(v):], `/\`)
	v = strings.NewReplacer(":", "", `\`, "_", "/", "_").Replace(v)
	return filepath.Join(v, rest)
}
