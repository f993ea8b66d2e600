//go:build unix

package drill

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgBinDirs are where the server binaries of major version N are, by
// platform and packaging: Debian/Ubuntu, RHEL (PGDG), Homebrew.
func pgBinDirs(major string) []string {
	return []string{
		"/usr/lib/postgresql/" + major + "/bin",
		"/usr/pgsql-" + major + "/bin",
		"/opt/homebrew/opt/postgresql@" + major + "/bin",
		"/usr/local/opt/postgresql@" + major + "/bin",
		"/usr/local/pgsql/bin",
	}
}

// pgPort names the socket file; nothing listens on TCP.
const pgPort = "5432"

// verifyPostgres starts the restored data directory as a private server
// (a socket in a directory only its user may enter, no TCP), waits for
// crash recovery, checks every btree index and (PostgreSQL 14 and later)
// every table with amcheck where the extension is installed, runs the
// spec's query, and stops the server.
func verifyPostgres(ctx context.Context, e verifyEnv) (string, error) {
	data := e.restored
	raw, err := os.ReadFile(filepath.Join(data, "PG_VERSION"))
	if err != nil {
		return "", fmt.Errorf("%s is not a PostgreSQL data directory: %v", e.spec.Path, err)
	}
	major := strings.TrimSpace(string(raw))
	bin := ""
	for _, d := range pgBinDirs(major) {
		if isExec(filepath.Join(d, "postgres")) {
			bin = d
			break
		}
	}
	if bin == "" {
		return "", fmt.Errorf("the data directory is of PostgreSQL %s, whose server binaries are not installed (looked in %s; Debian: apt-get install postgresql-%s)", major, strings.Join(pgBinDirs(major), ", "), major)
	}
	u, err := pickServerUser(data, "postgres")
	if err != nil {
		return "", err
	}
	// the copy is ours: a pid file from the live server would stop it, and
	// a data directory whose configuration lived in /etc (Debian) needs one
	os.Remove(filepath.Join(data, "postmaster.pid"))
	for _, f := range []string{"postgresql.conf", "pg_ident.conf"} {
		if _, err := os.Stat(filepath.Join(data, f)); errors.Is(err, os.ErrNotExist) {
			if err := u.writeFileAs(filepath.Join(data, f), nil); err != nil {
				return "", err
			}
		}
	}
	sock, err := u.privateDir("spdrill-pg-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(sock)
	hba := filepath.Join(sock, "pg_hba.conf")
	if err := u.writeFileAs(hba, []byte("local all all trust\n")); err != nil {
		return "", err
	}
	logPath := filepath.Join(sock, "server.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return "", err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "postgres"), "-D", data,
		"-c", "data_directory="+data, "-c", "hba_file="+hba, "-c", "port="+pgPort,
		"-c", "listen_addresses=", "-c", "unix_socket_directories="+sock, "-c", "unix_socket_permissions=0700",
		"-c", "archive_mode=off", "-c", "ssl=off", "-c", "logging_collector=off", "-c", "log_destination=stderr")
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "HOME=" + sock}
	cmd.Stdout, cmd.Stderr = logf, logf
	inGroup(cmd)
	u.apply(cmd)
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start PostgreSQL %s: %w", major, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer stopServer(cmd, exited, syscall.SIGINT) // fast shutdown

	role := firstNonEmpty(e.spec.User, "postgres")
	dsn := func(db string) string {
		return fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=disable connect_timeout=5", sock, pgPort, role, db)
	}
	conn, err := waitPostgres(ctx, exited, dsn("postgres"))
	if err != nil {
		return "", fmt.Errorf("PostgreSQL %s did not start on the restored copy: %v%s", major, err, logTail(logPath))
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var notes []string
	var inRecovery bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
		return "", err
	}
	if inRecovery {
		notes = append(notes, "the copy is a standby (in recovery): checked read-only")
	}
	var haveAmcheck bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck')").Scan(&haveAmcheck); err != nil {
		return "", err
	}
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname")
	if err != nil {
		return "", err
	}
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", err
	}
	checked := 0
	var bad []string
	if haveAmcheck && !inRecovery {
		for _, db := range dbs {
			n, problems, err := pgAmcheck(ctx, dsn(db), major)
			if err != nil {
				return "", fmt.Errorf("database %s: amcheck: %v", db, err)
			}
			checked += n
			for _, p := range problems {
				bad = append(bad, "database "+db+": "+p)
			}
		}
	}
	if len(bad) > 0 {
		return "", failWith(bad, "amcheck found %d damaged relations, first: %s", len(bad), bad[0])
	}
	switch {
	case haveAmcheck && !inRecovery:
		notes = append(notes, fmt.Sprintf("amcheck passed for %d indexes and tables in %d databases", checked, len(dbs)))
	case !haveAmcheck:
		notes = append(notes, "amcheck is not installed, so indexes and tables were not checked (Debian: it comes with the server package; elsewhere postgresql-contrib)")
	}
	if q := e.spec.Query; q != "" {
		qc := conn
		if db := e.spec.Database; db != "" && db != "postgres" {
			if qc, err = pgx.Connect(ctx, dsn(db)); err != nil {
				return "", fmt.Errorf("database %s: %v", db, err)
			}
			defer qc.Close(context.WithoutCancel(ctx))
		}
		found, v, err := pgFirstValue(ctx, qc, q)
		if err != nil {
			return "", fmt.Errorf("query %q: %v", q, err)
		}
		note, err := queryVerdict(q, found, v)
		if err != nil {
			return "", err
		}
		notes = append(notes, note)
	}
	return fmt.Sprintf("PostgreSQL %s started on the restored copy and recovered; %s", major, strings.Join(notes, "; ")), nil
}

// pgFirstValue runs q and returns the first value of its first row as
// text (nil for NULL), whatever its type.
func pgFirstValue(ctx context.Context, c *pgx.Conn, q string) (found bool, v any, err error) {
	rows, err := c.Query(ctx, q, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return false, nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		return false, nil, rows.Err()
	}
	if raw := rows.RawValues(); len(raw) > 0 && raw[0] != nil {
		v = string(raw[0])
	}
	rows.Close()
	return true, v, rows.Err()
}

// waitPostgres connects once the server has finished recovery.
func waitPostgres(ctx context.Context, exited <-chan struct{}, dsn string) (*pgx.Conn, error) {
	var last error
	for {
		select {
		case <-exited:
			return nil, errServerExited
		default:
		}
		c, err := pgx.Connect(ctx, dsn)
		if err == nil {
			return c, nil
		}
		last = err
		select {
		case <-exited:
			return nil, errServerExited
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pgAmcheck checks every btree index of database (bt_index_check with
// heapallindexed) and, from PostgreSQL 14, every table (verify_heapam).
// The extension is created in the copy, which is thrown away.
func pgAmcheck(ctx context.Context, dsn, major string) (int, []string, error) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, nil, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	if _, err := c.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS amcheck"); err != nil {
		return 0, nil, err
	}
	rows, err := c.Query(ctx, `SELECT c.oid, c.oid::regclass::text FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
		WHERE am.amname = 'btree' AND c.relpersistence <> 't' AND i.indisready AND i.indisvalid ORDER BY 2`)
	if err != nil {
		return 0, nil, err
	}
	type rel struct {
		oid  uint32
		name string
	}
	indexes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rel, error) {
		var x rel
		return x, r.Scan(&x.oid, &x.name)
	})
	if err != nil {
		return 0, nil, err
	}
	var bad []string
	for _, ix := range indexes {
		if _, err := c.Exec(ctx, "SELECT bt_index_check(index => $1, heapallindexed => true)", ix.oid); err != nil {
			if ctx.Err() != nil {
				return 0, nil, ctx.Err()
			}
			bad = append(bad, "index "+ix.name+": "+err.Error())
		}
	}
	n := len(indexes)
	if v, _ := strconv.Atoi(major); v >= 14 {
		rows, err := c.Query(ctx, `SELECT c.oid, c.oid::regclass::text FROM pg_class c
			WHERE c.relkind IN ('r', 'm', 't') AND c.relpersistence <> 't' ORDER BY 2`)
		if err != nil {
			return 0, nil, err
		}
		tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rel, error) {
			var x rel
			return x, r.Scan(&x.oid, &x.name)
		})
		if err != nil {
			return 0, nil, err
		}
		for _, t := range tables {
			var count int
			var first *string
			err := c.QueryRow(ctx, "SELECT count(*), min(format('block %s, offset %s: %s', blkno, offnum, msg)) FROM verify_heapam($1)", t.oid).Scan(&count, &first)
			switch {
			case err != nil && ctx.Err() != nil:
				return 0, nil, ctx.Err()
			case err != nil:
				bad = append(bad, "table "+t.name+": "+err.Error())
			case count > 0:
				bad = append(bad, fmt.Sprintf("table %s: %d problems, e.g. %s", t.name, count, *first))
			}
		}
		n += len(tables)
	}
	return n, bad, nil
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// logTail is the end of a server's log, on a new line, for a message.
func logTail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return ""
	}
	return "\n" + s
}
