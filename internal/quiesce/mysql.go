package quiesce

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MySQL holds a MariaDB or MySQL server still for a volume snapshot.
//
// Freeze runs FLUSH TABLES WITH READ LOCK on one pinned connection: every
// table is flushed and closed (MyISAM and Aria files are whole on disk,
// which crash recovery cannot repair) and no write can commit until Thaw
// runs UNLOCK TABLES on that same connection; InnoDB is crash-safe and
// recovers from the snapshot like after a power cut. Reads go on.
type MySQL struct {
	dsn     string
	timeout time.Duration
	opts    dbOptions

	db     *sql.DB
	conn   *sql.Conn
	locked bool
	name   string
	// oneVolume: this Freeze checked that one snapshot holds the server's files.
	oneVolume bool
}

// mysqlFix is the way out the coverage errors offer.
const mysqlFix = "fix: put the data directory (and any InnoDB log, undo or data directory outside it) on one btrfs subvolume below a source with snapshot: required, or configure a dump hook (mariadb-dump --single-transaction) for this server"

// NewMySQL returns a writer for the server at dsn, a go-sql-driver DSN
// ("user:password@tcp(host:3306)/" or "user@unix(/run/mysqld/mysqld.sock)/");
// the user needs the RELOAD privilege (FLUSH TABLES WITH READ LOCK). timeout
// bounds Freeze; 0 leaves only the run's deadline.
func NewMySQL(dsn string, timeout time.Duration, opts ...DBOption) *MySQL {
	m := &MySQL{dsn: dsn, timeout: timeout, opts: applyDBOptions(opts), name: "mysql"}
	if cfg, err := mysql.ParseDSN(dsn); err == nil {
		m.name = "mysql " + cfg.Addr // never the password
	}
	return m
}

// Name implements Writer.
func (m *MySQL) Name() string { return m.name }

// Freeze implements Writer. When the read lock does not come within the
// timeout (a long query or a held table lock), it returns a *TimeoutError:
// the snapshot holds the server crash-consistent all the same.
func (m *MySQL) Freeze(ctx context.Context, info FreezeInfo) (*Frozen, error) {
	ctx, cancel := freezeContext(ctx, m.timeout)
	defer cancel()
	m.oneVolume = false
	var err error
	if m.db, err = sql.Open("mysql", m.dsn); err != nil {
		return nil, m.fail(ctx, "open", err)
	}
	m.db.SetMaxOpenConns(2) // the pinned connection, and one to KILL a stuck lock
	if m.conn, err = m.db.Conn(ctx); err != nil {
		return nil, m.fail(ctx, "connect", err)
	}
	paths, err := m.serverPaths(ctx)
	if err != nil {
		return nil, m.fail(ctx, "find the server's files", err)
	}
	fr := &Frozen{}
	if err := dbCheckOneVolume("MariaDB/MySQL", info.Covered, paths, mysqlFix); err != nil {
		if !m.opts.allowUncovered {
			return nil, m.fail(ctx, "check the snapshot set", err)
		}
		fr.Notes = append(fr.Notes, fmt.Sprintf("%s: the server's files are not a restorable backup (%v); relying on the dump hook", m.Name(), err))
	} else {
		m.oneVolume = true
	}
	var id int64
	if err := m.conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		return nil, m.fail(ctx, "connection id", err)
	}
	// While FLUSH TABLES WITH READ LOCK waits (for a long query, say), it
	// blocks every writer behind it. The server bounds that wait by
	// lock_wait_timeout; and the driver only drops the connection when ctx
	// ends, which the server may notice late, so the statement is also
	// killed from a second connection.
	wait := 30 * time.Second
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d)
	}
	secs := max(1, int(math.Ceil(wait.Seconds())))
	if _, err := m.conn.ExecContext(ctx, fmt.Sprintf("SET SESSION lock_wait_timeout = %d", secs)); err != nil {
		return nil, m.fail(ctx, "set lock_wait_timeout", err)
	}
	start := time.Now()
	db := m.db
	stop := context.AfterFunc(ctx, func() { mysqlKill(db, id) })
	_, err = m.conn.ExecContext(ctx, "FLUSH TABLES WITH READ LOCK")
	stop()
	if err != nil {
		return nil, m.fail(ctx, "FLUSH TABLES WITH READ LOCK", fmt.Errorf("%w (the user needs the RELOAD privilege; a long-running query or a held table lock delays it)", err))
	}
	m.locked = true
	fr.Notes = append(fr.Notes, fmt.Sprintf("%s: tables flushed and read lock taken in %s; InnoDB restores by crash recovery",
		m.Name(), time.Since(start).Round(time.Millisecond)))
	return fr, nil
}

// mysqlKill ends the statement of connection id, from another connection.
func mysqlKill(db *sql.DB, id int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	db.ExecContext(ctx, fmt.Sprintf("KILL QUERY %d", id))
}

// serverPaths asks the server where its files are: the data directory,
// and the InnoDB directories, which may be set outside it.
func (m *MySQL) serverPaths(ctx context.Context) ([]dbClusterPath, error) {
	var dataDir string
	if err := m.conn.QueryRowContext(ctx, "SELECT @@datadir").Scan(&dataDir); err != nil {
		return nil, err
	}
	dataDir = dbRealPath(dataDir)
	paths := []dbClusterPath{{"data directory", dataDir}}
	for _, v := range []string{"innodb_data_home_dir", "innodb_log_group_home_dir", "innodb_undo_directory"} {
		var dir sql.NullString
		if err := m.conn.QueryRowContext(ctx, "SELECT @@"+v).Scan(&dir); err != nil {
			var me *mysql.MySQLError
			if errors.As(err, &me) && me.Number == 1193 { // unknown variable in this server
				continue
			}
			return nil, err
		}
		if !dir.Valid || dir.String == "" {
			continue
		}
		p := dir.String
		if !filepath.IsAbs(p) {
			p = filepath.Join(dataDir, p)
		}
		if p = dbRealPath(p); p != dataDir && !dbPathWithin(p, dataDir) {
			paths = append(paths, dbClusterPath{v, p})
		}
	}
	return paths, nil
}

// Thaw implements Writer: UNLOCK TABLES on the connection that holds the
// lock, then close. Safe after a failed Freeze.
func (m *MySQL) Thaw(ctx context.Context) error {
	var err error
	if m.locked && m.conn != nil {
		if _, uerr := m.conn.ExecContext(ctx, "UNLOCK TABLES"); uerr != nil {
			err = fmt.Errorf("%s: UNLOCK TABLES: %w (closing the connection releases the lock)", m.Name(), uerr)
		}
	}
	m.locked = false
	return errors.Join(err, m.close())
}

func (m *MySQL) close() error {
	var errs []error
	if m.conn != nil {
		errs = append(errs, m.conn.Close())
		m.conn = nil
	}
	if m.db != nil {
		errs = append(errs, m.db.Close())
		m.db = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: close: %w", m.Name(), err)
	}
	return nil
}

func (m *MySQL) fail(ctx context.Context, step string, err error) error {
	awaitDeadline(ctx, err)
	m.locked = false
	m.close()
	var ue *dbUncoveredError
	if errors.As(err, &ue) || errors.Is(err, errDBNoSnapshot) {
		return fmt.Errorf("%s: %w", m.Name(), err)
	}
	var me *mysql.MySQLError
	// the server's lock_wait_timeout is the writer's timeout too (see Freeze)
	timedOut := freezeTimedOut(ctx) || (errors.As(err, &me) && me.Number == mysqlLockWaitTimeout)
	if ctx.Err() != nil {
		err = fmt.Errorf("%w%s: it took longer than %s; raise the timeout, or run the backup when no long query runs", err, ctxNote(ctx, err), timeoutWords(m.timeout))
	}
	err = fmt.Errorf("%s: %s: %w", m.Name(), step, err)
	if !timedOut {
		return err
	}
	switch {
	case m.oneVolume:
		return &TimeoutError{Writer: m.Name(), Err: err, CrashConsistent: true,
			Consequence: "the snapshot holds the server crash-consistent: InnoDB recovers from its redo log when the server starts on the restored files; MyISAM and Aria tables written meanwhile may need REPAIR TABLE"}
	case m.opts.allowUncovered:
		return &TimeoutError{Writer: m.Name(), Err: err, Consequence: "the dump hook's dump is the backup of this server"}
	}
	return fmt.Errorf("%w; on-timeout: snap does not apply: the time ran out before the writer could check that one snapshot holds all the server's files", err)
}

// mysqlLockWaitTimeout is ER_LOCK_WAIT_TIMEOUT, which FLUSH TABLES WITH READ
// LOCK ends with when lock_wait_timeout passes.
const mysqlLockWaitTimeout = 1205
