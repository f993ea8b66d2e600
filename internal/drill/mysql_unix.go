//go:build unix

package drill

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// mysqlBinaries are the server programs tried, MariaDB's first.
var mysqlBinaries = []string{"mariadbd", "mysqld"}

func findMySQLServer() string {
	for _, n := range mysqlBinaries {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		for _, d := range []string{"/usr/sbin", "/usr/libexec", "/usr/local/sbin", "/usr/local/bin", "/opt/homebrew/bin"} {
			if p := filepath.Join(d, n); isExec(p) {
				return p
			}
		}
	}
	return ""
}

// verifyMySQL starts the restored data directory as a private MariaDB or
// MySQL server (a socket only its user may reach, no networking, no grant
// tables, no replication or events started), waits for crash recovery,
// runs CHECK TABLE on every table, or the spec's query instead, and
// stops the server.
func verifyMySQL(ctx context.Context, e verifyEnv) (string, error) {
	data := e.restored
	if fi, err := os.Stat(filepath.Join(data, "mysql")); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("%s is not a MariaDB/MySQL data directory (it has no mysql/ system schema)", e.spec.Path)
	}
	server := findMySQLServer()
	if server == "" {
		return "", errors.New("no MariaDB or MySQL server installed (looked for mariadbd and mysqld; Debian: apt-get install mariadb-server)")
	}
	u, err := pickServerUser(data, "mysql")
	if err != nil {
		return "", err
	}
	run, err := u.privateDir("spdrill-my-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(run)
	sock := filepath.Join(run, "mysqld.sock")
	logPath := filepath.Join(run, "error.log")
	// a live server's pid file in the copy means nothing here
	old, _ := filepath.Glob(filepath.Join(data, "*.pid"))
	for _, p := range old {
		os.Remove(p)
	}
	cmd := exec.CommandContext(ctx, server, "--no-defaults", "--datadir="+data,
		"--socket="+sock, "--pid-file="+filepath.Join(run, "mysqld.pid"), "--log-error="+logPath, "--tmpdir="+run,
		"--skip-networking", "--skip-grant-tables", "--skip-slave-start", "--event-scheduler=OFF")
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "HOME=" + run}
	out := &tailBuffer{max: outputTail}
	cmd.Stdout, cmd.Stderr = out, out
	inGroup(cmd)
	u.apply(cmd)
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start %s: %w", filepath.Base(server), err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer stopServer(cmd, exited, syscall.SIGTERM)

	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "unix", sock
	cfg.DBName = e.spec.Database
	cfg.Timeout = 5 * time.Second
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return "", err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := waitMySQL(ctx, exited, db); err != nil {
		return "", fmt.Errorf("%s did not start on the restored copy: %v%s%s", filepath.Base(server), err, lastLines(out.Bytes(), 5), logTail(logPath))
	}
	var version string
	_ = db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version)

	if q := e.spec.Query; q != "" {
		found, v, err := firstValue(ctx, db, q)
		if err != nil {
			return "", fmt.Errorf("query %q: %v", q, err)
		}
		note, err := queryVerdict(q, found, v)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("server %s started on the restored copy and recovered; %s", version, note), nil
	}
	n, bad, err := checkTables(ctx, db)
	if err != nil {
		return "", err
	}
	if len(bad) > 0 {
		return "", failWith(bad, "CHECK TABLE failed for %d of %d tables, first: %s", len(bad), n, bad[0])
	}
	return fmt.Sprintf("server %s started on the restored copy and recovered; CHECK TABLE passed for %d tables", version, n), nil
}

func waitMySQL(ctx context.Context, exited <-chan struct{}, db *sql.DB) error {
	var last error
	for {
		select {
		case <-exited:
			return errServerExited
		default:
		}
		if last = db.PingContext(ctx); last == nil {
			return nil
		}
		select {
		case <-exited:
			return errServerExited
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// checkTables runs CHECK TABLE on every base table and returns how many
// there were and those that are not OK.
func checkTables(ctx context.Context, db *sql.DB) (int, []string, error) {
	rows, err := db.QueryContext(ctx, `SELECT table_schema, table_name FROM information_schema.tables
		WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('information_schema', 'performance_schema', 'sys')
		ORDER BY table_schema, table_name`)
	if err != nil {
		return 0, nil, err
	}
	var tables [][2]string
	for rows.Next() {
		var t [2]string
		if err := rows.Scan(&t[0], &t[1]); err != nil {
			rows.Close()
			return 0, nil, err
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, nil, err
	}
	var bad []string
	for _, t := range tables {
		name := quoteIdent(t[0]) + "." + quoteIdent(t[1])
		msgs, err := checkTable(ctx, db, name)
		if err != nil {
			if ctx.Err() != nil {
				return 0, nil, ctx.Err()
			}
			bad = append(bad, name+": "+err.Error())
		} else if len(msgs) > 0 {
			bad = append(bad, name+": "+strings.Join(msgs, "; "))
		}
	}
	return len(tables), bad, nil
}

// checkTable returns the error messages CHECK TABLE gives for one table.
func checkTable(ctx context.Context, db *sql.DB, name string) ([]string, error) {
	rows, err := db.QueryContext(ctx, "CHECK TABLE "+name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var table, op, typ, text string
		if err := rows.Scan(&table, &op, &typ, &text); err != nil {
			return nil, err
		}
		switch strings.ToLower(typ) {
		case "error":
			msgs = append(msgs, text)
		case "status":
			if t := strings.ToLower(text); t != "ok" && t != "table is already up to date" {
				msgs = append(msgs, text)
			}
		}
	}
	return msgs, rows.Err()
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
