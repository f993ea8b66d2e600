package quiesce

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres prepares a PostgreSQL cluster for a volume snapshot.
//
// PostgreSQL is crash-safe: a snapshot of all its files taken at one
// instant restores like a server after a power cut, by replaying the WAL
// from the server's last checkpoint. So Freeze does not stop the server;
// it checks that the snapshot set holds every file of the cluster (the
// data directory, the real location of pg_wal, every tablespace) in one
// volume snapshot, and notes how old the last checkpoint is (at most about
// checkpoint_timeout of WAL to replay on restore). Only with
// ForceCheckpoint does it run CHECKPOINT, for less WAL to replay: an
// immediate checkpoint writes every dirty buffer at once, and the
// application's commits wait behind it. Thaw only closes the connection.
type Postgres struct {
	dsn     string
	timeout time.Duration
	opts    dbOptions

	conn *pgx.Conn
	name string
	// oneVolume: this Freeze checked that one snapshot holds the cluster.
	oneVolume bool
}

// pgFix is the way out the coverage errors offer.
const pgFix = "fix: put the data directory and pg_wal (and every tablespace) on one btrfs subvolume below a source with snapshot: required, or configure a dump hook (pg_dump) for this database"

// NewPostgres returns a writer for the cluster at dsn (a libpq URL or
// key=value string; the user needs to read data_directory: a superuser or a
// member of pg_read_all_settings, and with ForceCheckpoint the right to
// CHECKPOINT: a superuser or, from PostgreSQL 15, a member of
// pg_checkpoint). timeout bounds Freeze; 0 leaves only the run's deadline.
func NewPostgres(dsn string, timeout time.Duration, opts ...DBOption) *Postgres {
	p := &Postgres{dsn: dsn, timeout: timeout, opts: applyDBOptions(opts), name: "postgres"}
	if cfg, err := pgx.ParseConfig(dsn); err == nil {
		// The name must not carry the password.
		p.name = fmt.Sprintf("postgres %s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
	}
	return p
}

// Name implements Writer.
func (p *Postgres) Name() string { return p.name }

// Freeze implements Writer. With ForceCheckpoint, when CHECKPOINT does not
// finish within the timeout (a server busy writing), it returns a
// *TimeoutError: the snapshot holds the cluster crash-consistent all the
// same, with more WAL to replay on restore.
func (p *Postgres) Freeze(ctx context.Context, info FreezeInfo) (*Frozen, error) {
	ctx, cancel := freezeContext(ctx, p.timeout)
	defer cancel()
	p.oneVolume = false
	var err error
	// pgx cancels a running query on the server when ctx ends.
	p.conn, err = pgx.Connect(ctx, p.dsn)
	if err != nil {
		return nil, p.fail(ctx, "connect", err)
	}
	paths, err := p.clusterPaths(ctx)
	if err != nil {
		return nil, p.fail(ctx, "find the cluster's files", err)
	}
	fr := &Frozen{}
	if err := dbCheckOneVolume("PostgreSQL", info.Covered, paths, pgFix); err != nil {
		if !p.opts.allowUncovered {
			return nil, p.fail(ctx, "check the snapshot set", err)
		}
		fr.Notes = append(fr.Notes, fmt.Sprintf("%s: the cluster's files are not a restorable backup (%v); relying on the dump hook", p.Name(), err))
	} else {
		p.oneVolume = true
	}
	if !p.opts.checkpoint {
		// Without one snapshot of the cluster, the note above said the
		// files are no backup: there is nothing to recover.
		if p.oneVolume {
			note := fmt.Sprintf("%s: no checkpoint forced; the snapshot restores by crash recovery, replaying the WAL from the server's last checkpoint", p.Name())
			if age, ok := p.checkpointAge(ctx); ok {
				note += fmt.Sprintf(" (last checkpoint %s before the snapshot)", age)
			}
			fr.Notes = append(fr.Notes, note)
		}
		return fr, nil
	}
	start := time.Now()
	if _, err := p.conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return nil, p.fail(ctx, "CHECKPOINT", fmt.Errorf("%w (the user needs superuser or, from PostgreSQL 15, pg_checkpoint: GRANT pg_checkpoint TO <user>)", err))
	}
	fr.Notes = append(fr.Notes, fmt.Sprintf("%s: checkpoint in %s; the snapshot restores by crash recovery (WAL replay)",
		p.Name(), time.Since(start).Round(time.Millisecond)))
	return fr, nil
}

// checkpointAge says how long before now the server's last checkpoint
// was, by the server's own clock ("2m13s"; pg_control holds whole seconds).
// ok is false when the server does not tell (pg_control_checkpoint may not
// be granted to the user): the age is only for the note.
func (p *Postgres) checkpointAge(ctx context.Context) (age string, ok bool) {
	var at, now time.Time
	if err := p.conn.QueryRow(ctx, "SELECT checkpoint_time, clock_timestamp() FROM pg_control_checkpoint()").Scan(&at, &now); err != nil {
		return "", false
	}
	if d := now.Sub(at); d >= time.Second {
		return d.Round(time.Second).String(), true
	}
	return "under a second", true
}

// clusterPaths asks the server where its files are: the data directory
// first, then pg_wal (often a symlink to another disk) and the tablespaces
// (symlinks in pg_tblspc), all with symlinks resolved.
func (p *Postgres) clusterPaths(ctx context.Context) ([]dbClusterPath, error) {
	var dataDir string
	if err := p.conn.QueryRow(ctx, "SHOW data_directory").Scan(&dataDir); err != nil {
		return nil, fmt.Errorf("%w (SHOW data_directory needs superuser or pg_read_all_settings)", err)
	}
	paths := []dbClusterPath{{"data directory", dbRealPath(dataDir)}}
	wal := filepath.Join(dataDir, "pg_wal")
	if _, err := os.Lstat(wal); err != nil {
		if old := filepath.Join(dataDir, "pg_xlog"); dbExists(old) { // before PostgreSQL 10
			wal = old
		}
	}
	paths = append(paths, dbClusterPath{"WAL directory", dbRealPath(wal)})
	rows, err := p.conn.Query(ctx, "SELECT spcname, pg_tablespace_location(oid) FROM pg_tablespace")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var name, loc string
		if err := rows.Scan(&name, &loc); err != nil {
			return nil, err
		}
		if loc == "" { // pg_default and pg_global live in the data directory
			continue
		}
		paths = append(paths, dbClusterPath{"tablespace " + name, dbRealPath(loc)})
	}
	return paths, rows.Err()
}

// Thaw implements Writer: PostgreSQL was never stopped, so it only closes
// the connection. Safe after a failed Freeze.
func (p *Postgres) Thaw(ctx context.Context) error {
	if p.conn == nil {
		return nil
	}
	err := p.conn.Close(ctx)
	p.conn = nil
	if err != nil {
		return fmt.Errorf("%s: close: %w", p.Name(), err)
	}
	return nil
}

func (p *Postgres) fail(ctx context.Context, step string, err error) error {
	awaitDeadline(ctx, err)
	if p.conn != nil {
		p.conn.Close(context.Background())
		p.conn = nil
	}
	var ue *dbUncoveredError
	if errors.As(err, &ue) || errors.Is(err, errDBNoSnapshot) {
		return fmt.Errorf("%s: %w", p.Name(), err)
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("%w%s: it took longer than %s; raise the timeout, or run the backup when the server is less busy", err, ctxNote(ctx, err), timeoutWords(p.timeout))
	}
	err = fmt.Errorf("%s: %s: %w", p.Name(), step, err)
	if !freezeTimedOut(ctx) {
		return err
	}
	switch {
	case p.oneVolume:
		return &TimeoutError{Writer: p.Name(), Err: err, CrashConsistent: true,
			Consequence: "the snapshot holds the cluster crash-consistent: PostgreSQL replays its WAL from the last checkpoint when it starts on the restored files"}
	case p.opts.allowUncovered:
		return &TimeoutError{Writer: p.Name(), Err: err, Consequence: "the dump hook's dump is the backup of this database"}
	}
	return fmt.Errorf("%w; on-timeout: snap does not apply: the time ran out before the writer could check that one snapshot holds the whole cluster", err)
}

func dbExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
