// Package history keeps the record of runs — backups, follow-up runs and
// drills — in a SQLite database (pure Go, modernc.org/sqlite) in the
// state directory, for `stillpoint history`, the status page and the
// scheduler's view of when a job last ran.
//
// The database is opened in WAL mode with a busy timeout, so a daemon
// writing and a CLI reading at once both proceed. Its schema has a
// version; Open migrates an older one forward and refuses a newer one.
package history

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver
)

// FileName is the database's name in the state directory.
const FileName = "history.db"

// Kind is what a run did.
type Kind string

// Kinds of runs.
const (
	Full     Kind = "full"      // a backup of the job's sources
	FollowUp Kind = "follow-up" // a backup of the files queued for retry
	Drill    Kind = "drill"     // a restore drill
)

// Status is how a run ended.
type Status string

// Statuses.
const (
	// Success: a snapshot was written with every file whole (a drill:
	// every check passed).
	Success Status = "success"
	// Partial: a snapshot was written, with files flagged or failed (exit
	// code 3).
	Partial Status = "partial"
	// Failed: no snapshot (a drill: a check failed).
	Failed Status = "failed"
)

// Run is one recorded run. It holds plain values so the caller maps its
// own result onto it.
type Run struct {
	// ID is given by Record.
	ID   int64
	Job  string
	Kind Kind
	// Trigger is why it ran: scheduled, catch-up, manual, or "" (the CLI).
	Trigger    string
	Start, End time.Time
	Status     Status
	// Snapshot is the id of the snapshot written (a drill: the one
	// checked); "" when none.
	Snapshot string
	// Outcomes counts files per outcome (ok, ok-snapshot, changed,
	// skipped-open, failed).
	Outcomes map[string]int
	// Flagged lists the files not stored whole.
	Flagged []File
	// Steps are the hooks and writers of the run, in order.
	Steps []Step
	// FreezeWindow is how long the applications were frozen (writers
	// held) for the snapshot.
	FreezeWindow time.Duration
	// QuietWait is how long the run waited for write inactivity.
	QuietWait             time.Duration
	BytesRead, BytesAdded int64
	// RetriedFiles counts the files queued for a follow-up run (a
	// follow-up run: the files it retried).
	RetriedFiles int
	Errors       []string
}

// File is a file not stored whole.
type File struct {
	Path    string `json:"path"`
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
}

// Step is a hook or a writer of a run.
type Step struct {
	Kind   string `json:"kind"` // hook or writer
	Name   string `json:"name"`
	Status string `json:"status"`
	// Freeze is how long a writer held its application.
	Freeze  time.Duration `json:"-"`
	Message string        `json:"message,omitempty"`
}

// Duration is End - Start.
func (r *Run) Duration() time.Duration { return r.End.Sub(r.Start) }

// FlaggedCount is the number of files not stored whole.
func (r *Run) FlaggedCount() int {
	n := 0
	for o, c := range r.Outcomes {
		if o != "ok" && o != "ok-snapshot" {
			n += c
		}
	}
	return max(n, len(r.Flagged))
}

// ErrNotFound is returned by Get for an unknown id and by Last when the
// job has no such run.
var ErrNotFound = errors.New("history: no such run")

// DB is an open history database. Its methods are safe for concurrent
// use.
type DB struct {
	db   *sql.DB
	path string
}

// busyTimeout is how long a writer waits for another's transaction; the
// daemon's writes are a few rows, so this only matters when a reader
// holds a long read of a big history.
const busyTimeout = 10 * time.Second

// Open opens or creates the database at path, creating its directory.
func Open(path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path)}
	if !strings.HasPrefix(u.Path, "/") { // Windows: file:///C:/x
		u.Path = "/" + u.Path
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	u.RawQuery = q.Encode()
	sdb, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("history %s: %w", path, err)
	}
	d := &DB{db: sdb, path: path}
	if err := d.migrate(context.Background()); err != nil {
		sdb.Close()
		if strings.Contains(err.Error(), "not a database") || strings.Contains(err.Error(), "malformed") {
			return nil, fmt.Errorf("history %s is not a readable history database (%v); move it away and a new one is started", path, err)
		}
		return nil, fmt.Errorf("history %s: %w", path, err)
	}
	return d, nil
}

// Path is the database file.
func (d *DB) Path() string { return d.path }

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

// migrations are applied in order; migrations[i] brings the schema from
// version i to i+1. Never change one that was released: append.
var migrations = []string{
	`CREATE TABLE runs (
		id            INTEGER PRIMARY KEY AUTOINCREMENT,
		job           TEXT    NOT NULL,
		kind          TEXT    NOT NULL,
		trigger       TEXT    NOT NULL DEFAULT '',
		start_ns      INTEGER NOT NULL,
		end_ns        INTEGER NOT NULL,
		status        TEXT    NOT NULL,
		snapshot      TEXT    NOT NULL DEFAULT '',
		freeze_ms     INTEGER NOT NULL DEFAULT 0,
		quiet_wait_ms INTEGER NOT NULL DEFAULT 0,
		bytes_read    INTEGER NOT NULL DEFAULT 0,
		bytes_added   INTEGER NOT NULL DEFAULT 0,
		retried_files INTEGER NOT NULL DEFAULT 0,
		errors        TEXT    NOT NULL DEFAULT '[]'
	);
	CREATE INDEX runs_job_start ON runs (job, start_ns);
	CREATE INDEX runs_start ON runs (start_ns);
	CREATE TABLE outcomes (
		run     INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
		outcome TEXT    NOT NULL,
		count   INTEGER NOT NULL,
		PRIMARY KEY (run, outcome)
	);
	CREATE TABLE flagged (
		run     INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
		seq     INTEGER NOT NULL,
		path    TEXT    NOT NULL,
		outcome TEXT    NOT NULL,
		reason  TEXT    NOT NULL DEFAULT '',
		PRIMARY KEY (run, seq)
	);
	CREATE TABLE steps (
		run       INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
		seq       INTEGER NOT NULL,
		kind      TEXT    NOT NULL,
		name      TEXT    NOT NULL,
		status    TEXT    NOT NULL,
		freeze_ms INTEGER NOT NULL DEFAULT 0,
		message   TEXT    NOT NULL DEFAULT '',
		PRIMARY KEY (run, seq)
	);`,
}

// SchemaVersion is the version this code writes.
var SchemaVersion = len(migrations)

func (d *DB) migrate(ctx context.Context) error {
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// IMMEDIATE: two processes opening a new database at once must not
	// both read version 0 and then both migrate
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			conn.ExecContext(context.Background(), `ROLLBACK`)
		}
	}()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return err
	}
	var v int
	switch err := conn.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := conn.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("the history has schema version %d, newer than this stillpoint's %d: upgrade stillpoint", v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		if _, err := conn.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migration to schema version %d: %w", v+1, err)
		}
	}
	if _, err := conn.ExecContext(ctx, `UPDATE schema_version SET version = ?`, v); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
		return err
	}
	committed = true
	return nil
}

// Record stores a run and returns its id.
func (d *DB) Record(ctx context.Context, r *Run) (int64, error) {
	if r.Job == "" || r.Kind == "" || r.Status == "" {
		return 0, errors.New("history: a run needs a job, a kind and a status")
	}
	errs, err := json.Marshal(nonNil(r.Errors))
	if err != nil {
		return 0, err
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("history: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT INTO runs (job, kind, trigger, start_ns, end_ns, status, snapshot,
		freeze_ms, quiet_wait_ms, bytes_read, bytes_added, retried_files, errors)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Job, string(r.Kind), r.Trigger, r.Start.UnixNano(), r.End.UnixNano(), string(r.Status), r.Snapshot,
		r.FreezeWindow.Milliseconds(), r.QuietWait.Milliseconds(), r.BytesRead, r.BytesAdded, r.RetriedFiles, string(errs))
	if err != nil {
		return 0, fmt.Errorf("history: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("history: %w", err)
	}
	for o, n := range r.Outcomes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO outcomes (run, outcome, count) VALUES (?, ?, ?)`, id, o, n); err != nil {
			return 0, fmt.Errorf("history: %w", err)
		}
	}
	for i, f := range r.Flagged {
		if _, err := tx.ExecContext(ctx, `INSERT INTO flagged (run, seq, path, outcome, reason) VALUES (?, ?, ?, ?, ?)`, id, i, f.Path, f.Outcome, f.Reason); err != nil {
			return 0, fmt.Errorf("history: %w", err)
		}
	}
	for i, s := range r.Steps {
		if _, err := tx.ExecContext(ctx, `INSERT INTO steps (run, seq, kind, name, status, freeze_ms, message) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			id, i, s.Kind, s.Name, s.Status, s.Freeze.Milliseconds(), s.Message); err != nil {
			return 0, fmt.Errorf("history: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("history: %w", err)
	}
	r.ID = id
	return id, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

const runColumns = `id, job, kind, trigger, start_ns, end_ns, status, snapshot, freeze_ms, quiet_wait_ms, bytes_read, bytes_added, retried_files, errors`

// Get returns the run with the id.
func (d *DB) Get(ctx context.Context, id int64) (*Run, error) {
	runs, err := d.query(ctx, `SELECT `+runColumns+` FROM runs WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	return runs[0], nil
}

// List returns the job's runs (every job's when job is ""), newest first,
// at most limit of them (all when limit <= 0).
func (d *DB) List(ctx context.Context, job string, limit int) ([]*Run, error) {
	q := `SELECT ` + runColumns + ` FROM runs`
	var args []any
	if job != "" {
		q += ` WHERE job = ?`
		args = append(args, job)
	}
	q += ` ORDER BY start_ns DESC, id DESC`
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	return d.query(ctx, q, args...)
}

// Last returns the job's newest run with one of the statuses (any status
// when none is given); ErrNotFound when there is none.
func (d *DB) Last(ctx context.Context, job string, statuses ...Status) (*Run, error) {
	q := `SELECT ` + runColumns + ` FROM runs WHERE job = ?`
	args := []any{job}
	if len(statuses) > 0 {
		q += ` AND status IN (?` + strings.Repeat(", ?", len(statuses)-1) + `)`
		for _, s := range statuses {
			args = append(args, string(s))
		}
	}
	runs, err := d.query(ctx, q+` ORDER BY start_ns DESC, id DESC LIMIT 1`, args...)
	if err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("%w: job %s", ErrNotFound, job)
	}
	return runs[0], nil
}

// LastSuccess returns the job's newest run that wrote a snapshot (status
// success or partial) and was not a drill.
func (d *DB) LastSuccess(ctx context.Context, job string) (*Run, error) {
	runs, err := d.query(ctx, `SELECT `+runColumns+` FROM runs WHERE job = ? AND status IN (?, ?) AND kind != ?
		ORDER BY start_ns DESC, id DESC LIMIT 1`, job, string(Success), string(Partial), string(Drill))
	if err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("%w: job %s has no successful run", ErrNotFound, job)
	}
	return runs[0], nil
}

// Retention bounds the history: runs that started before Before go, but
// each job keeps its Keep newest runs, and its newest successful backup
// (whether the job is overdue is told from it), whatever their age.
type Retention struct {
	Before time.Time
	Keep   int
}

// DefaultRetention keeps a year and at least 100 runs of each job.
func DefaultRetention(now time.Time) Retention {
	return Retention{Before: now.AddDate(-1, 0, 0), Keep: 100}
}

// Prune deletes the runs the retention lets go, with their outcomes,
// flagged files and steps, and returns how many runs went.
func (d *DB) Prune(ctx context.Context, r Retention) (int64, error) {
	res, err := d.db.ExecContext(ctx, `DELETE FROM runs WHERE start_ns < ?
		AND id NOT IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY job ORDER BY start_ns DESC, id DESC) AS n FROM runs) WHERE n <= ?)
		AND id NOT IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY job ORDER BY start_ns DESC, id DESC) AS n FROM runs
			WHERE status IN (?, ?) AND kind != ?) WHERE n = 1)`,
		r.Before.UnixNano(), max(r.Keep, 0), string(Success), string(Partial), string(Drill))
	if err != nil {
		return 0, fmt.Errorf("history: pruning: %w", err)
	}
	return res.RowsAffected()
}

// Jobs returns the names of the jobs with runs, sorted.
func (d *DB) Jobs(ctx context.Context) ([]string, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT DISTINCT job FROM runs`)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var j string
		if err := rows.Scan(&j); err != nil {
			return nil, fmt.Errorf("history: %w", err)
		}
		out = append(out, j)
	}
	sort.Strings(out)
	return out, rows.Err()
}

func (d *DB) query(ctx context.Context, q string, args ...any) ([]*Run, error) {
	tx, err := d.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	defer tx.Rollback() // read only: one snapshot of the database for the runs and their rows
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	var runs []*Run
	byID := map[int64]*Run{}
	for rows.Next() {
		r := &Run{Outcomes: map[string]int{}}
		var kind, status, errs string
		var start, end, freeze, quiet int64
		if err := rows.Scan(&r.ID, &r.Job, &kind, &r.Trigger, &start, &end, &status, &r.Snapshot, &freeze, &quiet,
			&r.BytesRead, &r.BytesAdded, &r.RetriedFiles, &errs); err != nil {
			rows.Close()
			return nil, fmt.Errorf("history: %w", err)
		}
		r.Kind, r.Status = Kind(kind), Status(status)
		r.Start, r.End = time.Unix(0, start), time.Unix(0, end)
		r.FreezeWindow, r.QuietWait = time.Duration(freeze)*time.Millisecond, time.Duration(quiet)*time.Millisecond
		if err := json.Unmarshal([]byte(errs), &r.Errors); err != nil {
			rows.Close()
			return nil, fmt.Errorf("history: run %d: errors: %w", r.ID, err)
		}
		if len(r.Errors) == 0 {
			r.Errors = nil
		}
		runs = append(runs, r)
		byID[r.ID] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	if len(runs) == 0 {
		return nil, nil
	}
	for lo := 0; lo < len(runs); lo += idsPerQuery {
		if err := details(ctx, tx, runs[lo:min(lo+idsPerQuery, len(runs))], byID); err != nil {
			return nil, err
		}
	}
	return runs, nil
}

// idsPerQuery keeps a query's parameters well below SQLite's limit.
const idsPerQuery = 500

// details reads the outcomes, flagged files and steps of runs.
func details(ctx context.Context, tx *sql.Tx, runs []*Run, byID map[int64]*Run) error {
	ids := make([]any, 0, len(runs))
	for _, r := range runs {
		ids = append(ids, r.ID)
	}
	in := `(?` + strings.Repeat(", ?", len(ids)-1) + `)`
	if err := each(ctx, tx, `SELECT run, outcome, count FROM outcomes WHERE run IN `+in, ids, func(rows *sql.Rows) error {
		var id int64
		var o string
		var n int
		if err := rows.Scan(&id, &o, &n); err != nil {
			return err
		}
		byID[id].Outcomes[o] = n
		return nil
	}); err != nil {
		return err
	}
	if err := each(ctx, tx, `SELECT run, path, outcome, reason FROM flagged WHERE run IN `+in+` ORDER BY run, seq`, ids, func(rows *sql.Rows) error {
		var id int64
		var f File
		if err := rows.Scan(&id, &f.Path, &f.Outcome, &f.Reason); err != nil {
			return err
		}
		byID[id].Flagged = append(byID[id].Flagged, f)
		return nil
	}); err != nil {
		return err
	}
	if err := each(ctx, tx, `SELECT run, kind, name, status, freeze_ms, message FROM steps WHERE run IN `+in+` ORDER BY run, seq`, ids, func(rows *sql.Rows) error {
		var id, freeze int64
		var s Step
		if err := rows.Scan(&id, &s.Kind, &s.Name, &s.Status, &freeze, &s.Message); err != nil {
			return err
		}
		s.Freeze = time.Duration(freeze) * time.Millisecond
		byID[id].Steps = append(byID[id].Steps, s)
		return nil
	}); err != nil {
		return err
	}
	return nil
}

func each(ctx context.Context, tx *sql.Tx, q string, args []any, fn func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return fmt.Errorf("history: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return nil
}
